"""What a benchmark ran on, as its result file records it."""
import platform
from pathlib import Path

import torch

from mmlsskd.engine.optimizers.bf16_amp_optim_wrapper import cpu_has_amx


def cpu_model() -> str:
    """The CPU's model name, as lscpu reports it."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(threads: bool = True) -> str:
    """What a measurement ran on, as the result files record it: the GPU,
    or the CPU's model, its vector capability, AMX, and torch's threads."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    name = (f'{cpu_model()} ({torch.backends.cpu.get_cpu_capability()}'
            f'{", AMX" if cpu_has_amx() else ""})')
    return f'{name}, {torch.get_num_threads()} threads' if threads else name
