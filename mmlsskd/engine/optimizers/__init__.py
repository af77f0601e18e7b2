from .bf16_amp_optim_wrapper import (BF16AmpOptimWrapper, cpu_has_amx,
                                     cpu_runs_bf16_natively)

__all__ = ['BF16AmpOptimWrapper', 'cpu_has_amx', 'cpu_runs_bf16_natively']
