"""Let the mmengine Runner train and test with several CPU processes."""
import gc
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Prepare ``cfg`` for a multi-process run on a machine without GPUs.

    mmengine 0.10.7 always calls ``torch.cuda.set_device`` when it starts a
    ``pytorch`` launcher and passes ``device_ids=[local_rank]`` to DDP; both
    fail without a GPU. On such a machine we start the gloo process group
    ourselves (the Runner then skips its own set-up) and wrap the model in
    DDP without device ids. With a GPU nothing changes.

    Args:
        cfg (Config): The full config, modified in place.
        launcher (str): The ``--launcher`` value of the tool.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(
            f'CPU-only multi-process runs support --launcher pytorch, got '
            f'{launcher!r}. Start them with tools/dist_train.sh (torchrun).')
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False)
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def destroy_process_group() -> None:
    """End the process group, if any, and join its threads before the
    interpreter shuts down.

    A finished Runner lives on in reference cycles, and its DDP wrapper
    keeps the process group alive: ``torch.distributed`` forgets the group,
    but gloo's threads keep running into the interpreter's shutdown, where a
    rank can abort ("terminate called without an active exception") after
    the run itself succeeded. Collecting the cycles first lets the group be
    freed here, which joins those threads.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        gc.collect()
        torch_dist.destroy_process_group()
