"""Imported by every process of a tool run in a test: at interpreter exit,
write the names of the native threads still running to
``$EXIT_THREADS_DIR/rank$RANK.txt``, one per line.

A thread of the process group still running when the interpreter shuts down
can abort the rank after a successful run; the tools must have joined them.
"""
import atexit
import os
from pathlib import Path


def record_threads(directory: str) -> None:
    names = [
        (task / 'comm').read_text().strip()
        for task in Path('/proc/self/task').iterdir()
    ]
    path = Path(directory) / f'rank{os.environ.get("RANK", 0)}.txt'
    path.write_text('\n'.join(sorted(names)) + '\n')


if os.environ.get('EXIT_THREADS_DIR'):
    atexit.register(record_threads, os.environ['EXIT_THREADS_DIR'])
