import ctypes
import os

import torch

# mallopt() parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
MALLOC_ENV = ('MALLOC_MMAP_MAX_', 'MALLOC_TRIM_THRESHOLD_')


def reuse_freed_heap_memory() -> bool:
    """Let CPU training reuse freed tensor memory instead of remapping it.

    glibc's malloc serves every block above its mmap threshold (32 MB at
    most) with a fresh ``mmap``, which the kernel zero-fills page by page on
    first touch, and unmaps it when freed. LSSKD runs the backbone on all
    views at once, so its activations cross that size where plain training's
    do not, and on this project's CPU a ResNet-8x4 LSSKD step spent about a
    third of its time so (``tools/benchmarks/training_efficiency.py``).
    Switching mmap and heap trimming off keeps freed blocks for the next
    step; the process then keeps its peak memory, which every step reaches
    anyway.

    Nothing is changed with a GPU (tensors live in CUDA's caching
    allocator), outside glibc, or when ``MALLOC_MMAP_MAX_`` or
    ``MALLOC_TRIM_THRESHOLD_`` is set in the environment (the user's own
    choice wins).

    Returns:
        bool: Whether the setting was applied.
    """
    if torch.cuda.is_available() or any(key in os.environ
                                        for key in MALLOC_ENV):
        return False
    mallopt = getattr(ctypes.CDLL(None), 'mallopt', None)
    if mallopt is None:  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
