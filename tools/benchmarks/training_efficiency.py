"""What an LSSKD training step costs against plain training, measured.

For one CIFAR-100 student it builds real mmengine Runners from the shipped
configs (plain cross-entropy, PS-KD, LSSKD) on real CIFAR-100 batches, and
times whole training steps (the Runner's ``run_iter``: hooks, forward,
backward, optimizer step, and for PS-KD/LSSKD the past-prediction lookup and
update) side by side, interleaved, medians of ``--repeats``:

- ``plain``: the classifier on the batch (mmpretrain training);
- ``plain, K views``: the same classifier on all K rotated views, no
  auxiliary branch: the batch-scaling floor LSSKD cannot go below;
- ``PS-KD`` and ``LSSKD``.

It also prints the FLOP ratio of one LSSKD training forward (all views, all
branches) to one plain forward, and the efficiency defined in the issue:
``(LSSKD step / plain step) / FLOP ratio``; the share of the LSSKD step spent
in the past-prediction store and in building the soft targets (those parts
timed on their own, interleaved with the steps); and the peak memory of a
training step. With ``--channels-last`` it also times plain and LSSKD
training in that memory format, and with ``--bf16`` in bfloat16 mixed
precision (what ``tools/train.py --amp`` trains with without a GPU).

Like ``tools/train.py`` it keeps freed tensor memory on the heap when it
trains on the CPU (``mmlsskd.utils.reuse_freed_heap_memory``);
``--glibc-default`` measures with glibc's malloc defaults instead.

Example::

    python tools/benchmarks/training_efficiency.py \\
        ../shared/data/cifar-100-python --model resnet20 --batch-size 64
"""
import argparse
import tempfile
from pathlib import Path
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.runner import EpochBasedTrainLoop, Runner
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import mmlsskd  # noqa: F401  (registers LSSKD's components)
from mmlsskd.engine.optimizers import cpu_runs_bf16_natively
from mmlsskd.models.utils import progressive_targets
from mmlsskd.utils import reuse_freed_heap_memory

from cifar100_students import (add_student_arguments,  # beside this script
                               local_cifar100)
from interleaved_timing import interleaved_medians  # beside this script

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    'plain': 'configs/baselines/{model}_1xb64-240e_cifar100.py',
    'pskd': 'configs/pskd/pskd_{model}_1xb64-240e_cifar100.py',
    'lsskd': 'configs/lsskd/lsskd_{model}_1xb64-240e_cifar100.py',
}
# Timed candidates: (config, every rotated view as a batch, channels-last,
# bfloat16 mixed precision).
CANDIDATES = {
    'plain': ('plain', False, False, False),
    'plain, K views': ('plain', True, False, False),
    'PS-KD': ('pskd', False, False, False),
    'LSSKD': ('lsskd', False, False, False),
}
CHANNELS_LAST = {
    'plain, channels-last': ('plain', False, True, False),
    'LSSKD, channels-last': ('lsskd', False, True, False),
}
# What tools/train.py --amp trains with where there is no GPU.
BF16 = {
    'plain, bf16': ('plain', False, False, True),
    'LSSKD, bf16': ('lsskd', False, False, True),
}
BF16_CHANNELS_LAST = {
    'plain, channels-last, bf16': ('plain', False, True, True),
    'LSSKD, channels-last, bf16': ('lsskd', False, True, True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_student_arguments(parser)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--glibc-default', action='store_true',
        help="keep glibc's malloc defaults instead of the heap reuse that "
        'tools/train.py sets for CPU training')
    parser.add_argument(
        '--channels-last', action='store_true',
        help='also time plain and LSSKD training in the channels-last '
        'memory format')
    parser.add_argument(
        '--bf16', action='store_true',
        help='also time plain and LSSKD training in bfloat16 mixed '
        'precision (BF16AmpOptimWrapper, what tools/train.py --amp uses '
        'without a GPU), in every memory format timed')
    args = parser.parse_args()
    if args.bf16 and not cpu_runs_bf16_natively():
        # Still a measurement worth having (it is what --amp refuses), but
        # one that takes many times longer than the float32 steps.
        print(f'This CPU ({torch.backends.cpu.get_cpu_capability()}) has no '
              f'native bfloat16: the bf16 steps are emulated, many times '
              f'slower than float32; the run takes correspondingly long.',
              flush=True)
    return args


class SetupOnlyLoop(EpochBasedTrainLoop):
    """Run everything a training run does before its first step (hooks'
    ``before_train`` and ``before_train_epoch``: the store is built and
    attached), then return, so that single steps can be timed with
    ``run_iter``."""

    def run(self) -> torch.nn.Module:
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        return self.runner.model


def step_config(name: str, args: argparse.Namespace, work_dir: str,
                fraction: Optional[float] = None) -> Config:
    """The shipped ``name`` config on real CIFAR-100 training images (a
    class-stratified ``fraction`` of them if given), without evaluation."""
    cfg = Config.fromfile(str(ROOT / CONFIGS[name].format(model=args.model)))
    train_set = local_cifar100(args.data, 'train',
                               cfg.train_dataloader.dataset.pipeline)
    if fraction is not None:
        train_set = dict(type='ClassStratifiedSubset', dataset=train_set,
                         fraction=fraction, seed=0)
    cfg.train_dataloader.dataset = train_set
    cfg.train_dataloader.update(
        batch_size=args.batch_size, num_workers=0, persistent_workers=False)
    return without_evaluation(cfg, work_dir)


def without_evaluation(cfg: Config, work_dir: str) -> Config:
    """``cfg`` with no validation or test loop, writing into ``work_dir``
    quietly: what timing single training steps needs."""
    for part in ('val', 'test'):
        for key in ('dataloader', 'cfg', 'evaluator'):
            cfg[f'{part}_{key}'] = None
    cfg.update(work_dir=work_dir, log_level='WARNING')
    return cfg


def build_runner(cfg: Config, channels_last: bool = False,
                 bf16: bool = False) -> Runner:
    """A Runner of ``cfg``, its weights in channels-last layout and its
    training in bfloat16 mixed precision if asked."""
    if bf16:
        cfg.optim_wrapper.type = 'BF16AmpOptimWrapper'
    wrapped = cfg.model.type in ('PSKD', 'LSSKD')
    if channels_last and wrapped:
        cfg.model.channels_last = True
    runner = Runner.from_cfg(cfg)
    if channels_last and not wrapped:
        # mmpretrain's classifier has no such option: convert it in place,
        # as PSKD/LSSKD(channels_last=True) do.
        runner.model.to(memory_format=torch.channels_last)
    return runner


def ready_to_step(runner: Runner) -> Runner:
    """Set ``runner`` up as a training run does, so that single steps can
    be timed with ``run_iter``."""
    runner._train_loop = SetupOnlyLoop(
        runner=runner,
        dataloader=runner._train_dataloader,
        max_epochs=runner.cfg.train_cfg.max_epochs)
    runner.train()
    return runner


def set_up_runner(name: str, args: argparse.Namespace, work_dir: str,
                  channels_last: bool = False, bf16: bool = False) -> Runner:
    """A Runner of the ``name`` config on real CIFAR-100, set up to step."""
    return ready_to_step(
        build_runner(step_config(name, args, work_dir), channels_last, bf16))


def rotated_batch(batch: dict, num_views: int) -> dict:
    """The batch's images in all ``num_views`` quarter turns, view-major,
    with the labels repeated: what LSSKD's backbone sees, for the plain
    classifier."""
    images = batch['inputs']
    if torch.is_tensor(images):  # stacked by default_collate
        inputs = torch.cat(
            [torch.rot90(images, k, dims=(2, 3)) for k in range(num_views)])
    else:
        inputs = [
            torch.rot90(image, k, dims=(1, 2)) for k in range(num_views)
            for image in images
        ]
    return dict(inputs=inputs,
                data_samples=list(batch['data_samples']) * num_views)


def training_step(runner: Runner, batch: dict):
    """One training step exactly as the Runner's loop runs it."""
    loop = runner.train_loop

    def run():
        loop.run_iter(0, batch)
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    return run


def store_work(runner: Runner, batch: dict):
    """The past-prediction store's part of one step: the batch's lookup and
    the update after it."""
    algorithm = runner.model
    store = algorithm._past_predictions
    device = next(algorithm.parameters()).device
    # As in a step: host indices, predictions on the model's device.
    indices = torch.tensor([s.sample_idx for s in batch['data_samples']])
    final = torch.rand(
        len(indices), algorithm.num_classes, device=device).softmax(1)
    branches = torch.rand(
        algorithm.num_branches, len(indices), algorithm.num_views,
        algorithm.num_classes * algorithm.num_views,
        device=device).softmax(3)

    def run():
        store.lookup(indices, device)
        store.update(indices, final, branches, epoch=0)
        if device.type == 'cuda':
            torch.cuda.synchronize()

    return run


def target_work(runner: Runner, batch: dict):
    """LSSKD's soft-target construction of one step: the final classifier's
    progressive targets, the joint labels and every branch's hierarchical
    targets, from the batch's past predictions."""
    algorithm = runner.model
    device = next(algorithm.parameters()).device
    # Everything on the model's device, as the training forward has it.
    labels = torch.cat([s.gt_label for s in batch['data_samples']]).to(device)
    indices = torch.tensor([s.sample_idx for s in batch['data_samples']])
    past = algorithm._past_predictions.lookup(indices, device)
    weight = torch.full((len(labels), ), 0.5, device=device)
    joint_classes = algorithm.num_classes * algorithm.num_views

    def run():
        progressive_targets(labels, algorithm.num_classes, past.final,
                            weight)
        joint = algorithm.view_transform.joint_labels(labels)
        branch_weight = 0.5 * past.branch_written.float()
        for branch in past.branches:
            progressive_targets(joint, joint_classes, branch, branch_weight)
        if device.type == 'cuda':
            torch.cuda.synchronize()

    return run


def forward_flops(runner: Runner, batch: dict) -> int:
    """FLOPs of one training forward (every loss term's inputs).

    torch's FlopCounterMode counts the convolutions and matrix products
    that actually run; mmengine's analyzer traces a tensor-in, tensor-out
    forward, which LSSKD's training forward (data samples in, the store
    read) is not.
    """
    model = runner.model
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        data = model.data_preprocessor(batch, True)
        model(**data, mode='loss')
    if hasattr(model, 'pop_step_predictions'):
        model.pop_step_predictions()
    return counter.get_total_flops()


def step_peak_memory(step) -> int:
    """Peak bytes of tensors a training step allocates beyond those alive
    before it (activations, gradients, temporaries), as
    ``torch.cuda.max_memory_allocated`` tells on a GPU.

    On the CPU, PyTorch keeps no allocator statistics, so the step runs under
    the profiler and its allocation and free events are summed in time order.
    Resident-memory readings would not do: the C heap keeps freed pages.
    """
    step()  # the optimizer state exists after the first step
    if torch.cuda.is_available():
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        return torch.cuda.max_memory_allocated() - before
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes())
                    for e in prof.profiler.kineto_results.events()
                    if e.name() == '[memory]')
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def candidate_step(name: str, args: argparse.Namespace, work_dir: str):
    """The runner of candidate ``name`` and its timed step."""
    config, all_views, channels_last, bf16 = {
        **CANDIDATES, **CHANNELS_LAST, **BF16, **BF16_CHANNELS_LAST
    }[name]
    runner = set_up_runner(config, args, work_dir, channels_last, bf16)
    batch = next(iter(runner.train_dataloader))
    if all_views:
        batch = rotated_batch(batch, 4)
    return runner, batch, training_step(runner, batch)


def main() -> None:
    args = parse_args()
    heap_reuse = not args.glibc_default and reuse_freed_heap_memory()
    names = list(CANDIDATES) + (list(CHANNELS_LAST)
                                if args.channels_last else [])
    if args.bf16:
        names += list(BF16) + (list(BF16_CHANNELS_LAST)
                               if args.channels_last else [])
    runs, runners = {}, {}
    with tempfile.TemporaryDirectory() as work_dir:
        for i, name in enumerate(names):
            runners[name], batch, runs[name] = candidate_step(
                name, args, f'{work_dir}/{i}')
        batch = next(iter(runners['plain'].train_dataloader))
        flops = {
            name: forward_flops(runners[name], batch)
            for name in ('plain', 'LSSKD')
        }
        runs['store'] = store_work(runners['LSSKD'], batch)
        runs['targets'] = target_work(runners['LSSKD'], batch)
        seconds = interleaved_medians(runs, args.repeats, args.warmup)
        memory = {name: step_peak_memory(runs[name]) for name in names}
        store_bytes = runners['LSSKD'].model._past_predictions.nbytes

    num_views = runners['LSSKD'].model.num_views
    device = 'GPU' if torch.cuda.is_available() else (
        f'CPU, {torch.get_num_threads()} threads, '
        f'{"heap reuse" if heap_reuse else "glibc malloc defaults"}')
    print(f'\n{args.model}, batch {args.batch_size}, {num_views} views, '
          f'{device}; medians of {args.repeats} interleaved repeats\n')
    print('| step | s/step | x plain | peak step memory (MB) |')
    print('|---|---|---|---|')
    for name in names:
        print(f'| {name} | {seconds[name]:.4f} | '
              f'{seconds[name] / seconds["plain"]:.2f} | '
              f'{memory[name] / 2**20:.0f} |')
    time_ratio = seconds['LSSKD'] / seconds['plain']
    flop_ratio = flops['LSSKD'] / flops['plain']
    kview_ratio = seconds['plain, K views'] / seconds['plain']
    print(f'\npeak step memory: tensors a step allocates beyond those '
          f'alive before it; LSSKD also keeps its past-prediction store, '
          f'{store_bytes / 2**20:.0f} MB of host memory for the '
          f'{runners["LSSKD"].model._past_predictions.num_samples} '
          f'training images')
    print(f'forward FLOPs: plain {flops["plain"] / 1e9:.3f} G, LSSKD '
          f'{flops["LSSKD"] / 1e9:.3f} G, ratio {flop_ratio:.2f}')
    print(f'LSSKD efficiency (time ratio / FLOP ratio): '
          f'{time_ratio:.2f} / {flop_ratio:.2f} = '
          f'{time_ratio / flop_ratio:.2f}')
    print(f'K-view floor efficiency: {kview_ratio:.2f} / {num_views} = '
          f'{kview_ratio / num_views:.2f}')
    for part in ('store', 'targets'):
        print(f'share of the LSSKD step in {part}: '
              f'{100 * seconds[part] / seconds["LSSKD"]:.2f} %')
    if args.channels_last:
        for name in ('plain', 'LSSKD'):
            ratio = seconds[f'{name}, channels-last'] / seconds[name]
            print(f'{name}: channels-last / contiguous step time: '
                  f'{ratio:.2f}')
    if args.bf16:
        layouts = [''] + [', channels-last'] * args.channels_last
        for name in ('plain', 'LSSKD'):
            for layout in layouts:
                speedup = seconds[f'{name}{layout}'] / seconds[
                    f'{name}{layout}, bf16']
                print(f'{name}{layout}: float32 / bfloat16 step time: '
                      f'{speedup:.2f}')


if __name__ == '__main__':
    main()
