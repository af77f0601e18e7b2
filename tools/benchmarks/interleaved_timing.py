"""Timing for the benchmark scripts: candidates measured side by side."""
import statistics
import time
from typing import Callable, Dict


def interleaved_medians(runs: Dict[str, Callable[[], object]],
                        repeats: int,
                        warmup: int = 1) -> Dict[str, float]:
    """Median seconds of every callable, alternating them in each repeat.

    Alternating puts every candidate under the same load of a noisy
    machine, so their ratio means something even when the absolute times
    drift.

    Args:
        runs (dict[str, Callable]): The candidates, by name.
        repeats (int): Timed calls of each.
        warmup (int): Untimed calls of each first. Defaults to 1.

    Returns:
        dict[str, float]: The median seconds per call, by name.
    """
    for run in runs.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
