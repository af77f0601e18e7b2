"""Train and compare CE, label smoothing, PS-KD, LSSKD and its ablations and
options on real CIFAR-100 at a scale a CPU finishes in about an hour a run.

Every method trains the same backbone from the shipped configs with the same
seeds; the seed picks the stratified training subset, the initialisation and
the data order. The paper's step schedule is compressed to the epochs, and
the full test set is evaluated every ``--val-interval`` epochs. Every
finished run writes one small JSON file under ``--results-dir`` (method,
config, seed, fraction, epochs, last-epoch and best-epoch top-1/top-5,
per-branch top-1, the curve, wall time, summed over the parts of a resumed
run); a run whose file exists is skipped and an interrupted one resumes, so
a study can be spread over sessions. The table, the verdicts and the plot
are built from those files alone (cifar100_study_report.py);
``--update-docs`` writes the table, the verdicts and their summary (the
verdicts against cross-entropy of the methods that have every seed a
verdict needs) into docs/results.md; the README's table at a glance is
cifar100_study_compute.py's. The methods, their configs and where
their result files lie: cifar100_study_methods.py.

Options are chosen without the test set: with ``--fraction`` below 1 the
final checkpoint of every run is also evaluated on the training images its
subset left out (``ClassStratifiedSubset(split='unused')``, 40,000 images
at 0.2), the ``selection`` figure of its result file. A result file that
lacks it gets it when its checkpoint is still in ``--work-dir``.

A method that trains exactly as another and differs only after training
(``lsskd-precise-bn`` and ``lsskd-all-options``: PreciseBNHook recomputes
BN statistics and nothing else, and EpochSeedHook reseeds every epoch, so
the weights follow the same path) is derived from that method's final
checkpoint in ``--work-dir`` instead of trained again; its result file
names its source.

Example::

    python tools/benchmarks/cifar100_cpu_study.py \\
        ../shared/data/cifar-100-python --fraction 0.2 --epochs 12 \\
        --methods ce lsskd --seeds 0 1 2
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Optional

import torch
from mmengine.config import Config, DictAction

from mmlsskd.engine.optimizers import cpu_runs_bf16_natively
# Beside this script.
from cifar100_students import add_student_arguments, local_cifar100
from cifar100_study_methods import (DERIVED, METHODS, OVERRIDES, PRECISIONS,
                                    RESULTS_DIR, ROOT, load_results,
                                    result_path, scaled_milestones,
                                    training_options)
from cifar100_study_report import (lead_by_seed_table, past_prediction_table,
                                   plot, report, update_docs)


def run_name(text: str) -> tuple:
    """``(method, seed)`` of a ``METHOD:SEED`` argument."""
    method, _, seed = text.rpartition(':')
    if method not in METHODS or not seed.lstrip('-').isdigit():
        raise argparse.ArgumentTypeError(
            f'{text!r} is not METHOD:SEED with METHOD one of '
            f'{", ".join(METHODS)} and SEED an integer, e.g. lsskd:2')
    return method, int(seed)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_student_arguments(parser)
    parser.add_argument(
        '--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        '--fraction', type=float, default=0.2,
        help='share of every class of the training set to train on')
    parser.add_argument('--epochs', type=int, default=12)
    parser.add_argument(
        '--val-interval', type=int, default=2,
        help='evaluate every this many epochs (and after the last)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--runs', nargs='+', type=run_name, default=None,
        metavar='METHOD:SEED',
        help='train these runs, in this order, instead of every --methods '
        'at every --seeds (e.g. a method\'s last seed beside two ablations '
        'at seed 0, with --jobs 2); the report still covers --methods')
    parser.add_argument(
        '--holdout', type=float, default=0.0,
        help='hold out this share of every class of the training subset and '
        'evaluate on it during training (for choosing options without the '
        'test set); the test set is then evaluated once, after training')
    parser.add_argument(
        '--work-dir', default='work_dirs/cifar100_cpu_study',
        help='where the configs, logs and checkpoints go')
    parser.add_argument(
        '--results-dir', default=str(RESULTS_DIR),
        help='one JSON file per finished run; runs with a file are skipped')
    parser.add_argument(
        '--plot', default=None,
        help='PNG path of the accuracy plot (default: in --work-dir)')
    parser.add_argument(
        '--report-only', action='store_true',
        help='train nothing: build the table and plot from the results')
    parser.add_argument(
        '--update-docs', action='store_true',
        help='write the table, the verdicts and their summary into '
        'docs/results.md, between their markers')
    parser.add_argument(
        '--precision', choices=PRECISIONS, default='bf16',
        help='bf16: mixed precision in bfloat16 (BF16AmpOptimWrapper, what '
        'tools/train.py --amp trains with on a CPU, about twice as fast '
        'there); fp32: full precision. A result file of one precision is '
        'never read for the other')
    parser.add_argument(
        '--channels-last', action='store_true',
        help='keep PS-KD\'s and LSSKD\'s weights channels-last '
        '(model.channels_last=True: the same results, faster on a CPU); '
        'the plain classifier has no such option')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='extra key=value overrides for every method (tools/train.py);'
        ' those that change what a method learns need a --results-dir of '
        'their own')
    parser.add_argument(
        '--jobs', type=int, default=1,
        help='train this many runs at once, sharing the threads this '
        'process would use among them (OMP_NUM_THREADS, else the cores): '
        'a small network does not use two threads fully, so two runs at '
        'once may finish a study sooner (jobs_throughput.py measures it '
        'on the machine at hand, docs/benchmarks.md), each run later; '
        'fewer runs left to '
        'train than this share all the threads. Each run\'s output '
        'goes to console.log in its work directory')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be 1 or more, got {args.jobs}.')
    runs = args.runs or []
    twice = sorted({f'{m}:{s}' for m, s in runs if runs.count((m, s)) > 1})
    if twice:
        parser.error(f'--runs names {", ".join(twice)} more than once.')
    unreported = sorted({m for m, _ in runs} - set(args.methods))
    if unreported:
        parser.error(f'--runs trains {unreported}, which --methods leaves '
                     f'out of the report: add them to --methods.')
    options = training_options(args.cfg_options)
    if options and Path(args.results_dir).resolve() == RESULTS_DIR:
        parser.error(
            f'--cfg-options {options} change what the methods train, and '
            f'their result files would be read as the study\'s own: give '
            f'this command a --results-dir (and --work-dir) of its own, or '
            f'add the setting as a method in cifar100_study_methods.py.')
    if args.holdout and args.update_docs:
        parser.error('--update-docs writes the test-set table of the docs;'
                     ' a --holdout study is for choosing options: print its '
                     'table without --update-docs.')
    if args.precision == 'bf16' and not args.report_only and \
            not cpu_runs_bf16_natively():
        parser.error(
            f'this CPU ({torch.backends.cpu.get_cpu_capability()}) has no '
            f'native bfloat16: --precision bf16 (the default) would train '
            f'many times slower than float32 here. Pass --precision fp32; '
            f'its results are a regime of their own (file names without '
            f'_bf16), never mixed with bf16 ones.')
    return args


def subset(args: argparse.Namespace, seed: int, split: str,
           pipeline: list) -> dict:
    """The ``split`` of the seed's stratified draw of the training set."""
    return dict(type='ClassStratifiedSubset', fraction=args.fraction,
                seed=seed, holdout=args.holdout, split=split,
                dataset=local_cifar100(args.data, 'train', pipeline))


def study_config(method: str, seed: int,
                 args: argparse.Namespace) -> Config:
    """The shipped config of ``method``, shrunk to the study's scale."""
    cfg = Config.fromfile(str(ROOT / METHODS[method].format(model=args.model)))
    train_set = local_cifar100(args.data, 'train',
                               cfg.train_dataloader.dataset.pipeline)
    test_pipeline = cfg.val_dataloader.dataset.pipeline
    test_set = local_cifar100(args.data, 'test', test_pipeline)
    val_set = test_set
    if args.fraction < 1 or args.holdout:
        train_set = subset(args, seed, 'train',
                           cfg.train_dataloader.dataset.pipeline)
        if args.holdout:
            val_set = subset(args, seed, 'holdout', test_pipeline)
    # Two cores: data loading in the main process costs less than workers
    # competing with the training threads.
    cfg.train_dataloader.dataset = train_set
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    for name, dataset in (('val_dataloader', val_set),
                          ('test_dataloader', test_set)):
        cfg[name].dataset = dataset
        cfg[name].update(
            num_workers=0, persistent_workers=False, batch_size=256)

    cfg.param_scheduler.milestones = scaled_milestones(
        args.epochs, cfg.param_scheduler.milestones,
        cfg.train_cfg.max_epochs)
    cfg.train_cfg.update(
        max_epochs=args.epochs, val_interval=args.val_interval)
    cfg.randomness = dict(seed=seed)
    # Every epoch's checkpoint, the latest kept: a run killed with its
    # session resumes exactly in the next (EpochSeedHook reseeds epochs).
    cfg.default_hooks.checkpoint = dict(
        type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1)
    hooks = cfg.get('custom_hooks', [])
    if not any(h.get('type') == 'EpochSeedHook' for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='EpochSeedHook')]
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    if method.startswith('lsskd'):
        # Follow every auxiliary classifier on the test set too.
        cfg.model.evaluate_branches = True
        cfg.val_evaluator = [
            dict(type='Accuracy', topk=(1, 5)),
            dict(type='BranchAccuracy')
        ]
        cfg.test_evaluator = cfg.val_evaluator
    cfg.optim_wrapper.type = PRECISIONS[args.precision]
    if args.channels_last and cfg.model.type in ('PSKD', 'LSSKD'):
        cfg.model.channels_last = True
    cfg.merge_from_dict(OVERRIDES.get(method, {}))
    cfg.merge_from_dict(args.cfg_options)
    return cfg


def read_run(work_dir: Path) -> dict:
    """Per-evaluation results and the median logged seconds per training
    iteration, from the scalars.json of every part of the run (a resumed
    run has one per start; a later evaluation of an epoch wins)."""
    runs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not runs:
        raise FileNotFoundError(f'No scalars.json under {work_dir}.')
    records = []
    for run in runs:
        with open(run) as f:
            records += [json.loads(line) for line in f]
    # The median is robust to a few windows slowed by other processes.
    iter_times = [r['time'] for r in records if 'loss' in r and 'time' in r]
    curve = {
        r['step']: {
            'epoch': r['step'],
            **{k: v for k, v in r.items()
               if k.startswith(('accuracy/', 'aux/branch'))}
        }
        for r in records if 'accuracy/top1' in r
    }
    return dict(curve=[curve[e] for e in sorted(curve)],
                s_per_iter=statistics.median(iter_times),
                parts=len(runs))


def evaluate_checkpoint(config: Path, checkpoint: Path, work_dir: Path,
                        datasets: dict, precise_bn_epoch: int = None,
                        bn_on_views: bool = False) -> dict:
    """Metrics of ``checkpoint`` on each of ``datasets`` ({name: dataset
    config}), with the test pipeline and evaluators of ``config``.

    With ``precise_bn_epoch`` the config's PreciseBNHook first runs once, as
    after that (0-based) epoch: on the same training samples, in the same
    order, as in training; only the random augmentations are drawn anew.
    With ``bn_on_views`` it sees what the backbone saw in training, the
    four views of every image, instead of the unrotated images.
    """
    from mmengine.runner import Runner, TestLoop
    from mmpretrain.engine.hooks import PreciseBNHook
    cfg = Config.fromfile(str(config))
    cfg.update(load_from=None, resume=False, work_dir=str(work_dir))
    runner = Runner.from_cfg(cfg)
    runner.load_checkpoint(str(checkpoint))
    runner.call_hook('before_run')  # what Runner.test does first
    if precise_bn_epoch is not None:
        hook = next(h for h in runner.hooks if isinstance(h, PreciseBNHook))
        runner.train_dataloader.sampler.set_epoch(precise_bn_epoch)
        before = [b.clone() for n, b in runner.model.named_buffers()
                  if n.endswith('running_mean')]
        runner.model.train()
        model = runner.model
        if bn_on_views:
            # The hook runs the model in tensor mode: here, on every view.
            model.forward = lambda inputs, *args, **kwargs: \
                model.architecture.extract_feat(
                    model.view_transform(inputs), stage='backbone')
        hook.after_train_epoch(runner)
        if bn_on_views:
            del model.forward
        after = [b for n, b in runner.model.named_buffers()
                 if n.endswith('running_mean')]
        if all(torch.equal(x, y) for x, y in zip(before, after)):
            raise RuntimeError(f'PreciseBNHook changed no BN statistic of '
                               f'{checkpoint}.')
    metrics = {}
    for name, dataset in datasets.items():
        # Installed as the Runner's test loop, as Runner.test does, so that
        # the logging hooks count this loop's batches.
        runner._test_loop = TestLoop(
            runner, dict(cfg.test_dataloader, dataset=dataset),
            cfg.test_evaluator)
        metrics[name] = {
            k: float(v) for k, v in runner.test_loop.run().items()}
    runner.call_hook('after_run')
    return metrics


def accuracy_record(metrics: dict) -> dict:
    """Top-1, top-5 and every branch's top-1 from one evaluation."""
    return dict(top1=metrics['accuracy/top1'], top5=metrics['accuracy/top5'],
                branches_top1={k: v for k, v in metrics.items()
                               if k.startswith('aux/branch')})


def selection_record(args: argparse.Namespace, seed: int, config: Path,
                     checkpoint: Path, work_dir: Path) -> dict:
    """The checkpoint's accuracy on the training images its run left out:
    the figure options are chosen on."""
    pipeline = Config.fromfile(str(config)).test_dataloader.dataset.pipeline
    unused = subset(args, seed, 'unused', pipeline)
    metrics = evaluate_checkpoint(config, checkpoint, work_dir,
                                  dict(unused=unused))['unused']
    return dict(images='training images outside the subset',
                **accuracy_record(metrics))


def training_set(args: argparse.Namespace, seed: int,
                 pipeline: list) -> dict:
    """The images the seed's run trains on, through ``pipeline``."""
    if args.fraction < 1 or args.holdout:
        return subset(args, seed, 'train', pipeline)
    return local_cifar100(args.data, 'train', pipeline)


def fit_record(metrics: dict) -> dict:
    """How far a final checkpoint fitted the images it trained on."""
    return dict(images='the training subset, test pipeline',
                **accuracy_record(metrics))


def summarise_run(method: str, seed: int, args: argparse.Namespace,
                  run: dict, wall_s: float, test: dict = None,
                  selection: dict = None, derived_from: dict = None,
                  train_fit: dict = None, part_timings: list = None) -> dict:
    """The machine-readable result of one finished run: with a holdout,
    ``curve`` and ``last`` are the held-out images' (what options are
    chosen on) and ``test_after_training`` the test set's; without one,
    ``selection`` is the accuracy on the training images outside the
    subset."""
    curve = run['curve']
    last = curve[-1]
    branches = {
        k: v
        for k, v in last.items() if k.startswith('aux/branch')
    }
    extra = {}
    if test is None:
        # Reported beside the last epoch, labelled: the reference papers
        # report the best test epoch, which is chosen on the test set. A
        # derived run has its last epoch only.
        best = max(curve, key=lambda r: r['accuracy/top1'])
        extra['best_on_test'] = None if derived_from else dict(
            epoch=best['epoch'], top1=best['accuracy/top1'],
            top5=best['accuracy/top5'])
    else:
        extra['test_after_training'] = accuracy_record(test)
    if selection is not None:
        extra['selection'] = selection
    if train_fit is not None:
        extra['train_fit'] = train_fit
    if derived_from is not None:
        extra['derived_from'] = derived_from
    if part_timings is not None:
        extra['part_timings'] = part_timings
    return dict(
        method=method,
        config=METHODS[method].format(model=args.model),
        **({'config_overrides': OVERRIDES[method]}
           if method in OVERRIDES else {}),
        model=args.model,
        seed=seed,
        fraction=args.fraction,
        epochs=args.epochs,
        val_interval=args.val_interval,
        evaluated_on=('held-out training images' if test is not None else
                      'test set'),
        holdout=args.holdout,
        last=dict(epoch=last['epoch'], top1=last['accuracy/top1'],
                  top5=last['accuracy/top5'], branches_top1=branches),
        **extra,
        curve=curve,
        wall_s=None if wall_s is None else round(wall_s, 1),
        parts=run.get('parts', 1),
        s_per_iter=run['s_per_iter'],
        device=('cuda: ' + torch.cuda.get_device_name()
                if torch.cuda.is_available() else
                f'cpu: {platform.processor() or platform.machine()}, '
                f'{os.cpu_count()} cores'),
        torch=torch.__version__,
        date=datetime.date.today().isoformat(),
        precision=args.precision,
        channels_last=args.channels_last,
        # What the timings shared: the threads of the run's last part, and
        # how many runs trained at once (each part's: part_timings).
        threads=torch.get_num_threads(),
        jobs=args.jobs,
        commit=code_version(),
        cfg_options=args.cfg_options)


def code_version() -> str:
    """The commit the run's code is (``+changes`` if the checkout has
    uncommitted ones), so that a drift in the code shows in the files;
    None outside a git checkout."""
    def git(*command):
        return subprocess.run(['git', *command], cwd=ROOT, text=True,
                              capture_output=True)

    head = git('rev-parse', 'HEAD')
    if head.returncode:
        return None
    dirty = git('status', '--porcelain', '--untracked-files=no').stdout
    return head.stdout.strip() + ('+changes' if dirty.strip() else '')


def selects_on_unused(args: argparse.Namespace) -> bool:
    """Whether runs are chosen on the training images outside the subset
    (a holdout study chooses on its held-out images instead)."""
    return args.fraction < 1 and not args.holdout


def train_run(method: str, seed: int, args: argparse.Namespace,
              run_dir: Path, config: Path) -> dict:
    """Train ``config`` with tools/train.py, resuming an interrupted run
    from its last epoch, and summarise the run."""
    start = time.perf_counter()
    resume = ['--resume'] if (run_dir / 'last_checkpoint').exists() else []
    # A run that outlasted its session: the earlier parts' time, from their
    # logs, as the processes that ran them were killed before they could
    # say it.
    earlier_s = sum(part_seconds(log) for log in part_logs(run_dir))
    note_part_settings(run_dir, args)
    subprocess.run([
        sys.executable, str(ROOT / 'tools/train.py'), str(config),
        '--work-dir', str(run_dir), *resume
    ], check=True, env=dict(os.environ,
                            OMP_NUM_THREADS=str(torch.get_num_threads())))
    checkpoint = run_dir / f'epoch_{args.epochs}.pth'
    # After training, one evaluation of the final checkpoint on: the test
    # set (with a holdout, which followed the held-out images instead), the
    # unused training images (where options are chosen), and the images it
    # trained on (how far it fitted them).
    test_cfg = Config.fromfile(str(config)).test_dataloader.dataset
    pipeline = test_cfg.pipeline
    datasets = dict(fit=training_set(args, seed, pipeline))
    if args.holdout:
        datasets['test'] = test_cfg
    if selects_on_unused(args):
        datasets['unused'] = subset(args, seed, 'unused', pipeline)
    metrics = evaluate_checkpoint(config, checkpoint, run_dir / 'final',
                                  datasets)
    selection = None
    if 'unused' in metrics:
        selection = dict(images='training images outside the subset',
                         **accuracy_record(metrics['unused']))
    wall_s = earlier_s + time.perf_counter() - start
    return summarise_run(method, seed, args, read_run(run_dir), wall_s,
                         metrics.get('test'), selection,
                         train_fit=fit_record(metrics['fit']),
                         part_timings=part_timings(run_dir))


# mmengine starts every line of its log with the local time, to the second.
LOG_TIME = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - mmengine')
LOG_TIME_FORMAT = '%Y/%m/%d %H:%M:%S'


def part_logs(run_dir: Path) -> list:
    """The logs of the parts a run has had so far, one per start of
    tools/train.py (mmengine's ``<timestamp>/<timestamp>.log``)."""
    return sorted(log for log in run_dir.glob('*/*.log')
                  if log.stem == log.parent.name)


# One line per start of tools/train.py in a run's work directory.
PART_SETTINGS = 'part_settings.jsonl'


def note_part_settings(run_dir: Path, args: argparse.Namespace) -> None:
    """Note what the part of the run about to start shares its CPU with:
    its threads, and how many runs train at once. A run resumed with
    another ``--jobs`` has parts that differ."""
    with open(run_dir / PART_SETTINGS, 'a') as f:
        f.write(json.dumps(dict(
            started=datetime.datetime.now().strftime(LOG_TIME_FORMAT),
            threads=torch.get_num_threads(), jobs=args.jobs)) + '\n')


def part_timings(run_dir: Path) -> list:
    """Each part of a run: its seconds (:func:`part_seconds`) and the
    settings noted as it started, the last noted before its Runner's
    timestamp (None for a part started before the study noted them)."""
    notes = []
    if (run_dir / PART_SETTINGS).exists():
        notes = [json.loads(line) for line in
                 (run_dir / PART_SETTINGS).read_text().splitlines()]
    timings = []
    for log in part_logs(run_dir):
        started = datetime.datetime.strptime(log.stem, '%Y%m%d_%H%M%S')
        begun = [note for note in notes if datetime.datetime.strptime(
            note['started'], LOG_TIME_FORMAT) <= started]
        note = begun[-1] if begun else {}
        timings.append(dict(seconds=part_seconds(log),
                            threads=note.get('threads'),
                            jobs=note.get('jobs')))
    return timings


def part_span(log: Path) -> Optional[tuple]:
    """The times of the first and the last line of a part's log, or None
    for a part killed before it logged."""
    times = [match.group(1) for match in map(LOG_TIME.match,
                                             log.read_text().splitlines())
             if match]
    if not times:
        return None
    return tuple(datetime.datetime.strptime(t, LOG_TIME_FORMAT)
                 for t in (times[0], times[-1]))


def part_seconds(log: Path) -> float:
    """Seconds from the first to the last line of a part's log: its time
    up to its last logged iteration (the work after it, redone by the next
    part, is not counted)."""
    span = part_span(log)
    return 0. if span is None else (span[1] - span[0]).total_seconds()


def derive_run(method: str, seed: int, args: argparse.Namespace,
               run_dir: Path, config: Path, checkpoint: Path) -> dict:
    """Finish the source method's final checkpoint as ``method``'s config
    says (its PreciseBNHook, once, as after the last epoch) and evaluate
    it where a trained run of ``method`` would be evaluated."""
    cfg = Config.fromfile(str(config))
    datasets = dict(val=cfg.val_dataloader.dataset,
                    fit=training_set(args, seed,
                                     cfg.test_dataloader.dataset.pipeline))
    if args.holdout:
        datasets['test'] = cfg.test_dataloader.dataset
    if selects_on_unused(args):
        datasets['unused'] = subset(args, seed, 'unused',
                                    cfg.test_dataloader.dataset.pipeline)
    start = time.perf_counter()
    metrics = evaluate_checkpoint(config, checkpoint, run_dir, datasets,
                                  precise_bn_epoch=args.epochs - 1,
                                  bn_on_views=method.endswith('-views'))
    wall_s = time.perf_counter() - start
    source = json.loads(
        result_path(args, DERIVED[method], seed).read_text())
    run = dict(curve=[dict(epoch=args.epochs, **metrics['val'])],
               s_per_iter=source['s_per_iter'])
    selection = None
    if 'unused' in metrics:
        selection = dict(images='training images outside the subset',
                         **accuracy_record(metrics['unused']))
    derived_from = dict(
        method=DERIVED[method], checkpoint=os.path.relpath(checkpoint),
        why='trains as its source to the bit; finished after training, '
        'wall_s is the finishing only and s_per_iter the source\'s')
    return summarise_run(method, seed, args, run, wall_s,
                         metrics.get('test'), selection, derived_from,
                         fit_record(metrics['fit']))


def add_missing_selection(out: Path, method: str, seed: int,
                          args: argparse.Namespace, run_dir: Path) -> None:
    """Give an earlier result its selection figure, from its checkpoint."""
    result = json.loads(out.read_text())
    checkpoint = run_dir / f'epoch_{args.epochs}.pth'
    config = run_dir / f'{method}_{args.model}.py'
    if 'selection' in result or not selects_on_unused(args) or \
            not checkpoint.exists() or not config.exists():
        return
    result['selection'] = selection_record(args, seed, config, checkpoint,
                                           run_dir / 'selection')
    out.write_text(json.dumps(result, indent=1) + '\n')
    print(f'{method} seed {seed}: selection top-1 '
          f'{result["selection"]["top1"]:.2f} added to {out.name}')


def run_directory(args: argparse.Namespace, method: str, seed: int) -> Path:
    """Where a run keeps its config, logs and checkpoints."""
    return Path(args.work_dir).resolve() / f'{method}_seed{seed}'


def run_one(method: str, seed: int, args: argparse.Namespace) -> str:
    """Train (or derive) one run unless its result file exists, and write
    that file; what happened, in a line."""
    out = result_path(args, method, seed)
    run_dir = run_directory(args, method, seed)
    if out.exists():
        add_missing_selection(out, method, seed, args, run_dir)
        return f'{method} seed {seed}: done ({out.name}), skipped'
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / f'{method}_{args.model}.py'
    study_config(method, seed, args).dump(str(config))
    source = run_directory(args, DERIVED.get(method), seed) / \
        f'epoch_{args.epochs}.pth'
    # The bit-for-bit claim needs every epoch reseeded (the recalibration
    # draws augmentations).
    reseeded = any(h.get('type') == 'EpochSeedHook' for h in
                   Config.fromfile(str(config)).custom_hooks)
    if method in DERIVED and reseeded and source.exists() and \
            result_path(args, DERIVED[method], seed).exists():
        result = derive_run(method, seed, args, run_dir, config, source)
    else:
        result = train_run(method, seed, args, run_dir, config)
    out.write_text(json.dumps(result, indent=1) + '\n')
    return f'{method} seed {seed}: top-1 {result["last"]["top1"]:.2f} -> {out}'


def use_threads(threads: int) -> None:
    """A ``--jobs`` worker's share of the threads, for its evaluations and
    (through :func:`train_run`) the training processes it starts."""
    torch.set_num_threads(threads)


def run_one_beside_others(method: str, seed: int,
                          args: argparse.Namespace) -> str:
    """:func:`run_one` in a ``--jobs`` worker, its output (and that of the
    training process) into the run's ``console.log``, not interleaved with
    the other runs' on the terminal."""
    run_dir = run_directory(args, method, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = [os.dup(1), os.dup(2)]
    with open(run_dir / 'console.log', 'a') as console:
        os.dup2(console.fileno(), 1)
        os.dup2(console.fileno(), 2)
        try:
            return run_one(method, seed, args)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, saved in zip((1, 2), terminal):
                os.dup2(saved, fd)
                os.close(saved)


def report_finished(finished: set, running: dict) -> list:
    """Print what each finished run did, forget it in ``running``, and
    return the failed ones: ``(method, seed, exception)``."""
    failed = []
    for future in finished:
        method, seed = running.pop(future)
        if future.exception() is None:
            print(future.result(), flush=True)
        else:
            failed.append((method, seed, future.exception()))
    return failed


def run_side_by_side(runs: list, args: argparse.Namespace) -> None:
    """Train ``runs`` ``args.jobs`` at a time, each in a worker process with
    its share of the threads, in order; a derived run waits for its
    source's run. After a failure no further run starts, the running ones
    finish, and the failure is raised."""
    threads = max(1, torch.get_num_threads() // args.jobs)
    print(f'{len(runs)} runs, {args.jobs} at a time, {threads} thread(s) '
          'each; their output goes to console.log in their work '
          'directories', flush=True)
    queued, running = list(runs), {}
    with ProcessPoolExecutor(args.jobs, mp_context=get_context('spawn'),
                             initializer=use_threads,
                             initargs=(threads, )) as pool:
        while queued or running:
            unfinished = queued + list(running.values())
            ready = [(m, s) for m, s in queued
                     if (DERIVED.get(m), s) not in unfinished]
            for method, seed in ready[:args.jobs - len(running)]:
                queued.remove((method, seed))
                running[pool.submit(run_one_beside_others, method, seed,
                                    args)] = (method, seed)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            failed = report_finished(finished, running)
            if failed:
                failed += report_finished(wait(running).done, running)
                raise SystemExit('\n'.join(
                    f'{method} seed {seed} failed ({error!r}); its output '
                    f'is in {run_directory(args, method, seed)}/console.log.'
                    for method, seed, error in failed) +
                    '\nThe runs that had started finished; the same '
                    'command resumes the rest.')


def main() -> None:
    args = parse_args()
    work_dir = Path(args.work_dir).resolve()
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    runs = [] if args.report_only else args.runs or [
        (method, seed) for seed in args.seeds for method in args.methods]
    # Fewer runs left to train than --jobs: a slot without a run would
    # keep its share of the threads idle all along, so they share them all.
    left = sum(not result_path(args, m, s).exists() for m, s in runs)
    if 0 < left < args.jobs:
        print(f'{left} run(s) left to train: {left} at a time, not '
              f'--jobs {args.jobs}', flush=True)
        args.jobs = left
    if args.jobs > 1 and runs:
        run_side_by_side(runs, args)
    else:
        for method, seed in runs:
            print(run_one(method, seed, args), flush=True)

    results = load_results(args)
    results = {m: r for m, r in results.items() if m in args.methods}
    if not results:
        raise SystemExit(f'No results under {args.results_dir} for '
                         f'{args.methods}.')
    plot_path = Path(args.plot) if args.plot else work_dir / 'accuracy.png'
    plot(results, plot_path)
    table_block, verdict_block, summary_block = report(args, results)
    past_block = past_prediction_table(args, results)
    by_seed_block = lead_by_seed_table(args, results)
    print('\n' + '\n'.join(table_block) + '\n\n' + '\n'.join(verdict_block))
    if past_block:
        print('\n' + '\n'.join(past_block))
    print(f'\nPlot: {os.path.relpath(plot_path)}')
    if args.update_docs:
        update_docs(args, table_block, verdict_block, summary_block,
                    past_block, by_seed_block)


if __name__ == '__main__':
    main()
