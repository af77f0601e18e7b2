"""Show that an exported LSSKD student costs what the plain classifier costs.

Builds the exported student (tools/deployment/export_student.py output) and
the same classifier from a plain mmpretrain config, then prints for both:
parameters, FLOPs (mmengine's complexity analysis) and CPU latency per image
at batch 1 and 32, for PyTorch and for onnxruntime. Latencies are measured
side by side in one run: the two models alternate within every repeat and
the medians are reported with their ratio.

Example::

    python tools/benchmarks/student_overhead.py \\
        work_dirs/resnet18_student/student_config.py \\
        work_dirs/resnet18_student/student.pth \\
        configs/baselines/resnet18_1xb64-240e_cifar100.py --input-size 32
"""
import argparse
import os.path as osp
import tempfile

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS

import mmlsskd  # noqa: F401  (registers the CIFAR backbones)
from mmlsskd.deployment import export_onnx

from interleaved_timing import interleaved_medians  # beside this script


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('student_config', help='the exported config')
    parser.add_argument('student_checkpoint', help='the exported weights')
    parser.add_argument('plain_config', help='a plain mmpretrain config '
                        'of the same classifier')
    parser.add_argument('--input-size', type=int, default=32)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch and onnxruntime threads (default: all)')
    return parser.parse_args()


def build(config: str, checkpoint: str = None) -> torch.nn.Module:
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                        logger='silent')
    return model.eval()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = dict(
        student=build(args.student_config, args.student_checkpoint),
        plain=build(args.plain_config))
    shape = (3, args.input_size, args.input_size)

    print(f'{"":10} {"params (M)":>11} {"FLOPs (G)":>10}')
    complexity = {}
    for name, model in models.items():
        info = get_model_complexity_info(model, input_shape=shape,
                                         show_table=False, show_arch=False)
        complexity[name] = (sum(p.numel() for p in model.parameters()),
                            info['flops'])
        print(f'{name:10} {complexity[name][0] / 1e6:11.4f} '
              f'{complexity[name][1] / 1e9:10.4f}')
    same = complexity['student'] == complexity['plain']
    print(f'identical parameters and FLOPs: {same}')

    import onnxruntime
    options = onnxruntime.SessionOptions()
    if args.threads:
        options.intra_op_num_threads = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for name, model in models.items():
            path = osp.join(tmp, f'{name}.onnx')
            export_onnx(model, torch.randn(2, *shape), path)
            sessions[name] = onnxruntime.InferenceSession(
                path, options, providers=['CPUExecutionProvider'])

        print(f'\nCPU latency per image, median of {args.repeats} '
              f'interleaved repeats ({torch.get_num_threads()} threads)')
        print(f'{"runtime":12} {"batch":>5} {"student (ms)":>13} '
              f'{"plain (ms)":>11} {"ratio":>6}')
        for batch in args.batch_sizes:
            inputs = torch.randn(batch, *shape)
            array = inputs.numpy()

            def torch_run(model):
                def run():
                    with torch.no_grad():
                        model(inputs, mode='tensor')
                return run

            def onnx_run(session):
                return lambda: session.run(None, {'input': array})

            for runtime, runs in (
                ('PyTorch', {n: torch_run(m) for n, m in models.items()}),
                ('onnxruntime',
                 {n: onnx_run(s) for n, s in sessions.items()})):
                medians = interleaved_medians(runs, args.repeats,
                                              args.warmup)
                student, plain = (medians['student'] / batch * 1e3,
                                  medians['plain'] / batch * 1e3)
                print(f'{runtime:12} {batch:5d} {student:13.3f} '
                      f'{plain:11.3f} {student / plain:6.3f}')


if __name__ == '__main__':
    main()
