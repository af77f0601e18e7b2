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

With ``--hsakd PATH`` (a checkout of the official HSSAKD code) it times the
official code's plain and 4-view steps in the same interleaved rounds and
gives their efficiency as the reference (``official_hsakd.py``).

Like ``tools/train.py`` it keeps freed tensor memory on the heap when it
trains on the CPU (``mmlsskd.utils.reuse_freed_heap_memory``);
``--glibc-default`` measures with glibc's malloc defaults instead.

The figures go to ``--out`` (a JSON record); ``--update-docs`` writes
docs/benchmarks.md's tables from the committed records under
docs/results/training_efficiency/ without measuring anything.

Example::

    python tools/benchmarks/training_efficiency.py \\
        ../shared/data/cifar-100-python --model resnet20 --batch-size 64
    python tools/benchmarks/training_efficiency.py --update-docs
"""
import argparse
import datetime
import json
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

# Beside this script.
from cifar100_students import add_student_arguments, local_cifar100
from cifar100_study_report import write_block
from device_info import device_name
from interleaved_timing import interleaved_medians
from official_hsakd import ARCHS as OFFICIAL_ARCHS
from official_hsakd import (PLAIN, VIEWS, command_line, official_flop_ratio,
                            official_steps)

ROOT = Path(__file__).resolve().parents[2]
# The committed records docs/benchmarks.md shows, and its blocks' markers.
RECORDS = ROOT / 'docs/results/training_efficiency'
PAGE = ROOT / 'docs/benchmarks.md'
EFFICIENCY_MARKERS = ('<!-- training-efficiency: begin -->',
                      '<!-- training-efficiency: end -->')
BF16_MARKERS = ('<!-- bf16-steps: begin -->', '<!-- bf16-steps: end -->')
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
    add_student_arguments(parser, data_required=False)
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
    parser.add_argument(
        '--hsakd', default=None,
        help='a checkout of the official HSSAKD code (winycg/HSAKD): time '
        'its plain and 4-view training steps in the same rounds, the '
        'reference efficiency')
    parser.add_argument('--out', help='write the figures to this JSON file')
    parser.add_argument(
        '--update-docs', action='store_true',
        help=f"write docs/benchmarks.md's tables from the records under "
        f'{RECORDS.relative_to(ROOT)}/; measure nothing')
    args = parser.parse_args()
    if args.update_docs:
        return args
    if args.data is None:
        parser.error('the data folder is needed to measure (only '
                     '--update-docs goes without it).')
    if args.hsakd and args.model not in OFFICIAL_ARCHS:
        parser.error(f'the official HSSAKD code has no 4-view (_aux) '
                     f'network for {args.model}; compare one of '
                     f'{", ".join(OFFICIAL_ARCHS)}, or leave out --hsakd.')
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


def measure(args: argparse.Namespace) -> dict:
    """Time every candidate step, interleaved, and count what the record
    holds: the forwards' FLOPs, each step's peak memory, the store."""
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
        if args.hsakd:
            runs.update(official_steps(args.hsakd, args.batch_size,
                                       args.model))
        seconds = interleaved_medians(runs, args.repeats, args.warmup)
        memory = {name: step_peak_memory(runs[name]) for name in names}
        store = runners['LSSKD'].model._past_predictions
    figures = dict(
        steps=names, seconds=seconds,
        peak_step_mb={name: memory[name] / 2**20 for name in names},
        forward_gflops={name: f / 1e9 for name, f in flops.items()},
        num_views=runners['LSSKD'].model.num_views,
        store_mb=store.nbytes / 2**20, store_samples=store.num_samples)
    if args.hsakd:
        figures['official_flop_ratio'] = official_flop_ratio(
            args.hsakd, args.model)
    return figures


def efficiency(record: dict) -> dict:
    """The ratios the record's figures give: LSSKD's step and FLOP ratios
    to plain training, its efficiency (their quotient), the K-view floor's,
    the official code's, and the store's and targets' shares of the
    step."""
    seconds = record['seconds']
    flops = record['forward_gflops']
    ratios = dict(
        time=seconds['LSSKD'] / seconds['plain'],
        flops=flops['LSSKD'] / flops['plain'],
        floor=seconds['plain, K views'] / seconds['plain'] /
        record['num_views'],
        store=100 * seconds['store'] / seconds['LSSKD'],
        targets=100 * seconds['targets'] / seconds['LSSKD'])
    ratios['efficiency'] = ratios['time'] / ratios['flops']
    if 'official_flop_ratio' in record:
        ratios['official'] = (seconds[VIEWS] / seconds[PLAIN] /
                              record['official_flop_ratio'])
    return ratios


def report(record: dict) -> list:
    """Lines of the printed report of one record."""
    seconds, memory = record['seconds'], record['peak_step_mb']
    ratios = efficiency(record)
    lines = [
        f'{record["model"]}, batch {record["batch_size"]}, '
        f'{record["num_views"]} views, {record["device"]}, '
        f'{record["allocator"]}; medians of {record["repeats"]} interleaved '
        f'repeats', '', '| step | s/step | x plain | peak step memory (MB) |',
        '|---|---|---|---|'
    ]
    for name in record['steps']:
        lines.append(f'| {name} | {seconds[name]:.4f} | '
                     f'{seconds[name] / seconds["plain"]:.2f} | '
                     f'{memory[name]:.0f} |')
    flops = record['forward_gflops']
    lines += [
        '', f'peak step memory: tensors a step allocates beyond those alive '
        f'before it; LSSKD also keeps its past-prediction store, '
        f'{record["store_mb"]:.0f} MB for the {record["store_samples"]} '
        f'training images',
        f'forward FLOPs: plain {flops["plain"]:.3f} G, LSSKD '
        f'{flops["LSSKD"]:.3f} G, ratio {ratios["flops"]:.2f}',
        f'LSSKD efficiency (time ratio / FLOP ratio): '
        f'{ratios["time"]:.2f} / {ratios["flops"]:.2f} = '
        f'{ratios["efficiency"]:.2f}',
        f'K-view floor efficiency: {ratios["floor"]:.2f}'
    ]
    if 'official' in ratios:
        lines.append(f'official HSSAKD efficiency (4-view step / plain step '
                     f'/ FLOP ratio {record["official_flop_ratio"]:.2f}): '
                     f'{ratios["official"]:.2f}')
    for part in ('store', 'targets'):
        lines.append(f'share of the LSSKD step in {part}: '
                     f'{ratios[part]:.2f} %')
    for name in ('plain', 'LSSKD'):
        if f'{name}, channels-last' in seconds:
            ratio = seconds[f'{name}, channels-last'] / seconds[name]
            lines.append(f'{name}: channels-last / contiguous step time: '
                         f'{ratio:.2f}')
    for name, layout in bf16_steps(record):
        ratio = seconds[name + layout] / seconds[f'{name}{layout}, bf16']
        lines.append(f'{name}{layout}: float32 / bfloat16 step time: '
                     f'{ratio:.2f}')
    return lines


def bf16_steps(record: dict) -> list:
    """``(step, layout)`` of every step the record timed in both float32
    and bfloat16."""
    return [(name, layout) for name in ('plain', 'LSSKD')
            for layout in ('', ', channels-last')
            if f'{name}{layout}, bf16' in record['seconds']]


def caption(records: list) -> list:
    """Each record's command, device and date, as a list."""
    return [f'- `{r["command"]}`: {r["device"]}, {r["allocator"]}, '
            f'{r["date"]}' for r in records]


def efficiency_table(records: list) -> list:
    """docs/benchmarks.md's efficiency table: a row per record."""
    lines = caption(records) + [
        '', '| student | FLOP ratio | LSSKD step / plain step | efficiency '
        '| reference (official HSSAKD) | K-view floor | store share | '
        'target share | peak step memory, plain / LSSKD (MB) | '
        'channels-last / contiguous step, plain / LSSKD |',
        '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for record in records:
        seconds, memory = record['seconds'], record['peak_step_mb']
        ratios = efficiency(record)
        official = (f'{ratios["official"]:.2f} (FLOP ratio '
                    f'{record["official_flop_ratio"]:.2f})'
                    if 'official' in ratios else 'no 4-view network there')
        layouts = ' / '.join(
            f'{seconds[f"{name}, channels-last"] / seconds[name]:.2f}'
            for name in ('plain', 'LSSKD')
            if f'{name}, channels-last' in seconds) or 'not timed'
        lines.append(
            f'| {record["model"]} | {ratios["flops"]:.2f} | '
            f'{ratios["time"]:.2f} ({seconds["LSSKD"]:.3f} s / '
            f'{seconds["plain"]:.3f} s) | {ratios["efficiency"]:.2f} | '
            f'{official} | {ratios["floor"]:.2f} | {ratios["store"]:.2f} % | '
            f'{ratios["targets"]:.2f} % | {memory["plain"]:.0f} / '
            f'{memory["LSSKD"]:.0f} | {layouts} |')
    return lines


def bf16_table(records: list) -> list:
    """docs/benchmarks.md's bfloat16 table: every step a record timed in
    both precisions, by CPU."""
    records = [r for r in records if bf16_steps(r)]
    if not records:
        return ['No record times bfloat16 steps yet.']
    lines = caption(records) + [
        '', '| CPU | student | step | float32 (s) | bfloat16 (s) | '
        'float32 / bfloat16 | peak step memory, float32 / bfloat16 (MB) |',
        '|---|---|---|---|---|---|---|'
    ]
    for record in records:
        seconds, memory = record['seconds'], record['peak_step_mb']
        for name, layout in bf16_steps(record):
            fp32, bf16 = name + layout, f'{name}{layout}, bf16'
            lines.append(
                f'| {record["device"]} | {record["model"]} | {fp32} | '
                f'{seconds[fp32]:.3f} | {seconds[bf16]:.3f} | '
                f'{seconds[fp32] / seconds[bf16]:.2f} | '
                f'{memory[fp32]:.0f} / {memory[bf16]:.0f} |')
    return lines


def load_records() -> list:
    """The committed records, in the order the page lists them."""
    return [json.loads(p.read_text()) for p in sorted(RECORDS.glob('*.json'))]


def update_docs(records: list) -> None:
    """Write docs/benchmarks.md's efficiency and bfloat16 tables."""
    write_block(PAGE, *EFFICIENCY_MARKERS, efficiency_table(records))
    write_block(PAGE, *BF16_MARKERS, bf16_table(records))


def main() -> None:
    args = parse_args()
    if args.update_docs:
        update_docs(load_records())
        return
    heap_reuse = not args.glibc_default and reuse_freed_heap_memory()
    record = dict(
        model=args.model, batch_size=args.batch_size, repeats=args.repeats,
        device=device_name(), torch=torch.__version__,
        allocator=('heap reuse' if heap_reuse else 'glibc malloc defaults')
        if not torch.cuda.is_available() else 'CUDA caching allocator',
        date=datetime.date.today().isoformat(),
        command=command_line('tools/benchmarks/training_efficiency.py'),
        **measure(args))
    print('\n' + '\n'.join(report(record)))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + '\n')


if __name__ == '__main__':
    main()
