"""One training run per work directory.

Two runs in one work directory overwrite each other's checkpoints, past
predictions and ``last_checkpoint``, and both end without an error. The
training tool holds an exclusive ``flock`` on ``<work_dir>/.train.lock``
while it runs. The operating system drops the lock when the process ends,
however it ends (``kill -9`` included), so a killed run never leaves a lock
that blocks the next one.
"""
import datetime
import os
import os.path as osp
import socket
import warnings
from typing import Optional

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

LOCK_NAME = '.train.lock'


class WorkDirInUseError(RuntimeError):
    """Another training run holds the work directory."""


def launch_rank() -> int:
    """This process's global rank as the launchers set it, before
    ``torch.distributed`` is initialised (0 without a launcher)."""
    for name in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if name in os.environ:
            return int(os.environ[name])
    return 0


class WorkDirLock:
    """An exclusive lock on a work directory for one training run.

    Args:
        work_dir (str): The run's work directory; created if missing.
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self._file = None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock, or raise naming the run that holds it.

        Raises:
            WorkDirInUseError: If another process holds it.
        """
        if fcntl is None:
            return self
        os.makedirs(self.work_dir, exist_ok=True)
        file = open(self.path, 'a+')
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or 'a process'
            file.close()
            raise WorkDirInUseError(
                f'work_dir: {self.work_dir} is in use by another training run '
                f'({holder}), and two runs would overwrite each other\'s '
                f'checkpoints. Wait for it to end, or give this run its own '
                f'--work-dir.') from None
        except OSError as error:  # e.g. a network file system without locks
            file.close()
            warnings.warn(f'Could not lock {self.work_dir} ({error}); nothing '
                          f'stops a second run from using it.')
            return self
        file.seek(0)
        file.truncate()
        file.write(f'pid {os.getpid()} on {socket.gethostname()}, since '
                   f'{datetime.datetime.now():%Y-%m-%d %H:%M:%S}\n')
        file.flush()
        self._file = file
        return self

    def release(self) -> None:
        """Let the next run in (the process's end does the same)."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def lock_work_dir(work_dir: str) -> Optional[WorkDirLock]:
    """The work directory's lock, taken by the launch's rank 0 (the other
    ranks are the same run); None on the other ranks."""
    if launch_rank() != 0:
        return None
    return WorkDirLock(work_dir).acquire()
