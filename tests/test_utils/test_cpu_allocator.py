"""reuse_freed_heap_memory: large tensors stop being mmapped, in a fresh
process (the allocator setting is process-wide)."""
import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason="reads glibc's mallinfo2")

PROBE = r'''
import ctypes, json, sys
import torch
from mmlsskd.utils import reuse_freed_heap_memory


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
        'fsmblks', 'uordblks', 'fordblks', 'keepcost')]


libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2


def mapped_bytes_while_holding(mb):
    tensor = torch.empty(mb * 2**20, dtype=torch.uint8)
    tensor.fill_(1)
    return libc.mallinfo2().hblkhd


before = mapped_bytes_while_holding(64)
applied = reuse_freed_heap_memory()
after = mapped_bytes_while_holding(64)
print(json.dumps(dict(before=before, applied=applied, after=after)))
'''


def probe(**env):
    output = subprocess.run([sys.executable, '-c', PROBE],
                            env=dict(os.environ, **env), check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='the setting stays off where CUDA is present')
def test_large_tensors_come_from_the_heap_once_applied():
    result = probe()
    # glibc's default: a 64 MB block is its own mapping ...
    assert result['before'] >= 64 * 2**20
    # ... and after the call it is carved from the heap instead.
    assert result['applied'] is True
    assert result['after'] < 64 * 2**20


def test_the_users_environment_wins():
    result = probe(MALLOC_MMAP_MAX_='65536')
    assert result['applied'] is False
    assert result['after'] >= 64 * 2**20


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_nothing_is_changed_where_cuda_is_present():
    result = probe()
    assert result['applied'] is False
    assert result['after'] >= 64 * 2**20
