"""Check and time mmlsskd on a GPU machine; one JSON file per figure.

On a machine with CUDA it runs, in order (each part can be skipped):

1. the test suite (``--skip-tests`` leaves it out), which includes the
   tests that only run with CUDA;
2. two short epochs of LSSKD with ``--amp`` (float16 on a GPU) through
   ``tools/train.py``, and checks that every logged loss is finite and that
   the saved past-prediction store is float32 and written for every image;
3. a one-process ``tools/dist_train.sh`` run, which uses NCCL on a GPU;
4. the training steps of ``training_efficiency.py`` (plain, plain on the K
   views, PS-KD, LSSKD) on each path: ``eager`` (mmengine's per-step loss
   logging, the past-prediction store in host memory, the NaN check read
   on the host every step) and ``fast`` (:class:`BatchedRuntimeInfoHook`,
   the store on the GPU, ``finite_check='device'`` with fused SGD; plain
   training gets the same logging and optimizer) and ``compiled`` (``fast``
   with the training forward and losses compiled as one graph,
   ``compile_losses=dict(mode='reduce-overhead')``: CUDA graphs; the
   plain classifier's ``loss`` compiled alike), in float32, channels-last
   and bfloat16 (``BF16AmpOptimWrapper``); by default plain and LSSKD on
   ``eager`` and ``compiled`` in float32 and bfloat16, which with the
   suite should fit one 10-minute call (``--budget`` stops starting
   whole-epoch timings after 420 s). For every candidate it writes
   ``ms_per_step`` (median of interleaved ``run_iter`` calls) and
   ``ms_per_iter`` (the wall time of a whole epoch with data loading,
   hooks and logging, over its iterations).

Every figure goes to ``--out-dir`` (default ``docs/results/gpu/``) as one
JSON object with ``device``, ``torch``, ``model``, ``batch_size``,
``method``, ``path``, ``precision``, ``memory_format``, ``ms_per_step`` and
``ms_per_iter``; the checks write ``check_*.json``. Without CUDA the timings
run on the CPU (for a smoke test) and the GPU-only checks are skipped.

Example (on the GPU machine, ``../shared/gpu/README.md``)::

    python tools/benchmarks/gpu_check.py ~/gpu/data/cifar-100-python
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from mmengine.hooks import Hook

import mmlsskd  # noqa: F401  (registers LSSKD's components)

from cifar100_students import add_student_arguments  # beside this script
from interleaved_timing import interleaved_medians  # beside this script
from training_efficiency import (build_runner, ready_to_step, rotated_batch,
                                 step_config, training_step)

ROOT = Path(__file__).resolve().parents[2]
METHODS = {  # method: (config, every rotated view as a batch)
    'plain': ('plain', False),
    'plain, K views': ('plain', True),
    'PS-KD': ('pskd', False),
    'LSSKD': ('lsskd', False),
}
# path: (runtime-info hook, store device, NaN check, fused optimizer,
# compiled training forward)
PATHS = {
    'eager': (dict(type='RuntimeInfoHook'), 'cpu', 'step', False, False),
    'fast': (dict(type='BatchedRuntimeInfoHook'), 'auto', 'device', True,
             False),
    'compiled': (dict(type='BatchedRuntimeInfoHook'), 'auto', 'device',
                 True, True),
}
# The compiled path: one graph for the training forward and its losses,
# captured as CUDA graphs on a GPU; on the CPU (a smoke test) traced only.
COMPILE = dict(fullgraph=True, mode='reduce-overhead') \
    if torch.cuda.is_available() else dict(fullgraph=True,
                                           backend='aot_eager')
VARIANTS = {  # name: (precision, memory format)
    'fp32': ('float32', 'contiguous'),
    'channels-last': ('float32', 'channels_last'),
    'bf16': ('bfloat16', 'contiguous'),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_student_arguments(parser)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--steps-per-repeat', type=int, default=20)
    parser.add_argument(
        '--epoch-fraction', type=float, default=0.2,
        help='share of every class in the timed epoch (0.2: 157 steps)')
    parser.add_argument('--workers', type=int, default=4,
                        help='data-loader workers of the timed epochs')
    parser.add_argument('--methods', nargs='+', default=['plain', 'LSSKD'],
                        choices=list(METHODS))
    # The defaults fit one 10-minute call on an H100 with the suite.
    parser.add_argument('--paths', nargs='+', default=['eager', 'compiled'],
                        choices=list(PATHS))
    parser.add_argument('--variants', nargs='+', default=['fp32', 'bf16'],
                        choices=list(VARIANTS))
    parser.add_argument('--skip-tests', action='store_true')
    parser.add_argument(
        '--budget', type=float, default=420,
        help='seconds after which no whole-epoch timing starts (the step '
        'figures are still written), so that a 10-minute call returns')
    parser.add_argument('--out-dir', default=str(ROOT / 'docs/results/gpu'))
    return parser.parse_args()


def environment() -> dict:
    """The fields every result file carries."""
    cuda = torch.cuda.is_available()
    return dict(
        device=torch.cuda.get_device_name() if cuda else
        f'cpu ({os.cpu_count()} cores)',
        torch=torch.__version__,
        date=datetime.date.today().isoformat(),
        command=' '.join([Path(sys.argv[0]).name] + sys.argv[1:]))


def write(out_dir: Path, name: str, record: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f'{name}.json'
    path.write_text(json.dumps({**environment(), **record}, indent=1) + '\n')
    print(f'{path.name}: ' + ', '.join(
        f'{k}={v}' for k, v in record.items() if not isinstance(v, dict)),
          flush=True)


def slug(*parts: str) -> str:
    return '_'.join(p.replace(', ', '-').replace(' ', '-') for p in parts)


def channels_last(variant: str) -> bool:
    return VARIANTS[variant][1] == 'channels_last'


def configure(method: str, path: str, variant: str, args, work_dir: str,
              fraction=None):
    """The config of one timed candidate."""
    config, _ = METHODS[method]
    cfg = step_config(config, args, work_dir, fraction)
    hook, store_device, finite_check, fused, compiled = PATHS[path]
    cfg.default_hooks.runtime_info = hook
    if compiled and cfg.model.type in ('PSKD', 'LSSKD'):
        cfg.model.compile_losses = COMPILE
    cfg.optim_wrapper.optimizer.fused = fused
    for hook_cfg in cfg.get('custom_hooks', []):
        if hook_cfg['type'] == 'PastPredictionHook':
            hook_cfg['store'] = dict(hook_cfg.get('store') or {},
                                     device=store_device)
            hook_cfg['finite_check'] = finite_check
    if VARIANTS[variant][0] == 'bfloat16':
        cfg.optim_wrapper.type = 'BF16AmpOptimWrapper'
    cfg.train_dataloader.update(
        num_workers=args.workers, persistent_workers=args.workers > 0,
        pin_memory=torch.cuda.is_available())
    return cfg


class EpochTimer(Hook):
    """Wall time of every training epoch, synchronised with the GPU."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.seconds, self.iters = [], []

    def before_train_epoch(self, runner) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def after_train_epoch(self, runner) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self._start)
        self.iters.append(len(runner.train_dataloader))


def build_candidate(cfg, path: str, variant: str):
    """The Runner of a candidate; on the compiled path the plain
    classifier's training forward and loss (``ImageClassifier.loss``) is
    compiled as PS-KD's and LSSKD's are by ``compile_losses``."""
    runner = build_runner(cfg, channels_last(variant))
    model = runner.model
    if PATHS[path][-1] and not hasattr(model, 'compute_losses'):
        model.loss = torch.compile(model.loss, **COMPILE)
    return runner


def epoch_ms_per_iter(method, path, variant, args, work_dir) -> float:
    """Two epochs of a class-stratified share of the training set; the
    second epoch's wall time over its iterations (the first warms up)."""
    cfg = configure(method, path, variant, args, work_dir,
                    args.epoch_fraction)
    cfg.train_cfg.update(max_epochs=2, val_interval=100)
    runner = build_candidate(cfg, path, variant)
    timer = EpochTimer()
    runner.register_hook(timer)
    if METHODS[method][1]:
        # The K-view floor: the plain classifier on every rotated view.
        model = runner.model
        forward = model.forward

        def on_all_views(inputs, data_samples=None, mode='tensor'):
            if mode == 'loss':
                inputs = torch.cat(
                    [torch.rot90(inputs, k, (2, 3)) for k in range(4)])
                data_samples = list(data_samples) * 4
            return forward(inputs, data_samples, mode)

        model.forward = on_all_views
    runner.train()
    return 1000 * timer.seconds[-1] / timer.iters[-1]


def step_runner(method, path, variant, args, work_dir):
    cfg = configure(method, path, variant, args, work_dir)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    runner = ready_to_step(build_candidate(cfg, path, variant))
    batch = next(iter(runner.train_dataloader))
    if METHODS[method][1]:
        batch = rotated_batch(batch, 4)
    step = training_step(runner, batch)

    def steps():
        for _ in range(args.steps_per_repeat):
            step()

    return steps


def small_lsskd_config(args, work_dir: Path, epochs: int) -> Path:
    """LSSKD on 2 % of every class for ``epochs`` epochs, saved to a file
    that tools/train.py and tools/dist_train.sh take."""
    cfg = step_config('lsskd', args, str(work_dir), fraction=0.02)
    cfg.train_cfg.update(max_epochs=epochs, val_interval=100)
    cfg.train_dataloader.num_workers = 2
    cfg.log_level = 'INFO'
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / 'lsskd_small.py'
    cfg.dump(str(path))
    return path


def check_amp(args, work_dir: Path, out_dir: Path) -> None:
    """Two short epochs of AMP LSSKD through tools/train.py (mmengine's
    float16 AmpOptimWrapper with its loss scale on a GPU)."""
    config = small_lsskd_config(args, work_dir, epochs=2)
    run = subprocess.run([
        sys.executable, 'tools/train.py', str(config), '--amp',
        '--work-dir', str(work_dir)
    ], cwd=ROOT, capture_output=True, text=True)
    record = dict(check='amp_lsskd_two_epochs', returncode=run.returncode)
    if run.returncode == 0:
        scalars = next(work_dir.glob('*/vis_data/scalars.json'))
        losses = [
            v for line in scalars.read_text().splitlines()
            for k, v in json.loads(line).items() if k.startswith('loss')
        ]
        ckpt = torch.load(work_dir / 'epoch_2.pth', map_location='cpu',
                          weights_only=False)
        store = ckpt['lsskd_past_predictions']
        record.update(
            losses_logged=len(losses),
            losses_finite=all(v == v and abs(v) != float('inf')
                              for v in losses),
            store_dtypes=sorted({str(t.dtype) for k, t in store.items()
                                 if k != 'written_epoch'}),
            store_filled=bool((store['written_epoch'] == 1).all()))
    else:
        record['stderr_tail'] = run.stderr[-2000:]
    write(out_dir, 'check_amp', record)


def check_nccl(args, work_dir: Path, out_dir: Path) -> None:
    """A one-process tools/dist_train.sh run (NCCL on a GPU)."""
    config = small_lsskd_config(args, work_dir, epochs=1)
    run = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(config), '1', '--work-dir',
         str(work_dir)], cwd=ROOT, capture_output=True, text=True,
        env=dict(os.environ, PYTHON=sys.executable, NCCL_DEBUG='INFO'))
    output = run.stdout + run.stderr
    write(out_dir, 'check_nccl', dict(
        check='dist_train_one_process', returncode=run.returncode,
        nccl_initialised='NCCL INFO' in output,
        output_tail=output[-1500:]))


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    out_dir = Path(args.out_dir)
    cuda = torch.cuda.is_available()
    if not args.skip_tests:
        run = subprocess.run([sys.executable, '-m', 'pytest', 'tests', '-q'],
                             cwd=ROOT, capture_output=True, text=True)
        write(out_dir, 'check_suite', dict(
            check='pytest tests', returncode=run.returncode,
            summary=run.stdout.strip().splitlines()[-1:]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if cuda:
            check_amp(args, tmp / 'amp', out_dir)
            check_nccl(args, tmp / 'nccl', out_dir)
        else:
            print('No CUDA: the AMP and NCCL checks are skipped.')
        variants = [v for v in args.variants
                    if cuda or VARIANTS[v][0] == 'float32']
        candidates = [(m, p, v) for v in variants for p in args.paths
                      for m in args.methods]
        steps = {
            c: step_runner(*c, args, str(tmp / f'steps{i}'))
            for i, c in enumerate(candidates)
        }
        seconds = interleaved_medians(steps, args.repeats, warmup=1)
        for i, (method, path, variant) in enumerate(candidates):
            precision, memory_format = VARIANTS[variant]
            # The whole-epoch figure is the one that can wait: past the
            # budget, the step figures still come back within the call.
            late = time.perf_counter() - start > args.budget
            ms_per_iter = None if late else round(epoch_ms_per_iter(
                method, path, variant, args, str(tmp / f'epoch{i}')), 2)
            write(out_dir, slug(args.model, method, path, variant), dict(
                model=args.model, batch_size=args.batch_size,
                method=method, path=path, precision=precision,
                memory_format=memory_format,
                ms_per_step=round(1000 * seconds[(method, path, variant)] /
                                  args.steps_per_repeat, 2),
                ms_per_iter=ms_per_iter,
                **({'ms_per_iter_skipped': f'past --budget {args.budget} s'}
                   if late else {})))


if __name__ == '__main__':
    main()
