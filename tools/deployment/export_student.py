"""Export the student of an LSSKD (or PS-KD) run as a plain mmpretrain model.

Writes into --out-dir:
  student.pth        the classifier's weights alone (no auxiliary branch,
                     no past predictions), loadable with mmpretrain;
  student_config.py  a plain mmpretrain config for it (no algorithm wrapper,
                     no mmlsskd import unless the backbone is mmlsskd's);
  student.onnx       with --onnx: logits with a dynamic batch axis, checked
                     against PyTorch with onnxruntime.

The student's logits are compared with the LSSKD model's on real test
images (the config's test set; --random-inputs if there is none), and the
export fails if they differ by more than --atol. The input checkpoint is
only read.

Example::

    python tools/deployment/export_student.py \\
        configs/lsskd/resnet18_cifar100.py \\
        work_dirs/resnet18_cifar100/epoch_240.pth \\
        --out-dir work_dirs/resnet18_student --onnx
"""
import argparse
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

import mmlsskd  # noqa: F401  (registers components, safe checkpoint types)
from mmlsskd.deployment import (ONNX_OPSET, drop_branch_only_weights,
                                export_onnx, load_student_weights,
                                load_training_checkpoint, onnx_logits,
                                student_checkpoint, student_config)
from mmlsskd.utils import refusals_without_traceback


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export the plain student of an LSSKD checkpoint')
    parser.add_argument('config', help='the LSSKD or PS-KD training config')
    parser.add_argument('checkpoint', help='its training checkpoint')
    parser.add_argument(
        '--out-dir',
        help='output folder (default: work_dirs/<config name>_student)')
    parser.add_argument(
        '--onnx', action='store_true', help='also export student.onnx')
    parser.add_argument(
        '--opset', type=int, default=ONNX_OPSET,
        help=f'ONNX opset (default {ONNX_OPSET})')
    parser.add_argument(
        '--atol', type=float, default=1e-4,
        help='largest logit difference accepted between the LSSKD model, '
        'the exported PyTorch student and ONNX (default 1e-4)')
    parser.add_argument(
        '--batch-size', type=int, default=8,
        help='images used for the checks (default 8)')
    parser.add_argument(
        '--random-inputs', action='store_true',
        help='check on random images instead of the test set')
    parser.add_argument(
        '--input-size', type=int, default=None,
        help='image size for --random-inputs (default: the aux_neck '
        'input_size of the config, else 224)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings (e.g. the test data root)')
    return parser.parse_args()


def build_classifier(model_cfg: dict, cfg: Config) -> torch.nn.Module:
    """Build a model as the Runner would (top-level data_preprocessor)."""
    model_cfg = dict(model_cfg)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    return model.eval()


def check_inputs(args, cfg: Config, student) -> torch.Tensor:
    """A preprocessed batch: real test images, or random ones if asked."""
    if args.random_inputs:
        size = args.input_size or cfg.model.get('aux_neck', {}).get(
            'input_size', 224)
        return torch.randn(args.batch_size, 3, size, size)
    loader_cfg = dict(cfg.test_dataloader)
    loader_cfg.update(batch_size=args.batch_size, num_workers=0,
                      persistent_workers=False)
    try:
        batch = next(iter(Runner.build_dataloader(loader_cfg)))
    except (FileNotFoundError, RuntimeError, AssertionError) as error:
        raise SystemExit(
            f'Cannot read test images to check the export ({error}). Point '
            f'test_dataloader at your data with --cfg-options, or pass '
            f'--random-inputs.') from None
    return student.data_preprocessor(batch, False)['inputs']


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.config):
        raise SystemExit(f'Config {args.config} does not exist.')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    try:
        checkpoint = load_training_checkpoint(args.checkpoint)
        plain_cfg, notes = student_config(cfg)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None

    out_dir = args.out_dir or osp.join(
        'work_dirs',
        osp.splitext(osp.basename(args.config))[0] + '_student')
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        name: osp.join(out_dir, name)
        for name in ('student.pth', 'student_config.py', 'student.onnx')
    }
    if osp.abspath(args.checkpoint) in map(osp.abspath, paths.values()):
        raise SystemExit(
            f'--out-dir {out_dir} would overwrite the input checkpoint; '
            f'choose another folder.')

    exported = student_checkpoint(checkpoint, args.checkpoint)
    student = build_classifier(plain_cfg.model, plain_cfg)
    teacher = build_classifier(cfg.model, cfg)
    dropped = drop_branch_only_weights(exported['state_dict'], student,
                                       teacher)
    if dropped:
        notes.append(
            f'dropped {len(dropped)} backbone weights that only the '
            f'auxiliary branches read ({", ".join(dropped[:3])}'
            f'{" ..." if len(dropped) > 3 else ""}): the outputs LSSKD asked '
            f'the backbone for.')
    try:
        load_student_weights(student, exported['state_dict'],
                             args.checkpoint, args.config)
        load_student_weights(teacher, checkpoint['state_dict'],
                             args.checkpoint, args.config)
    except ValueError as error:
        raise SystemExit(str(error)) from None

    inputs = check_inputs(args, cfg, student)
    with torch.no_grad():
        reference = teacher(inputs, mode='tensor')
        logits = student(inputs, mode='tensor')
    diff = (logits - reference).abs().max().item()
    print(f'PyTorch student vs LSSKD model on {len(inputs)} images of '
          f'{tuple(inputs.shape[2:])}: max |logit diff| = {diff:.3g}')
    if diff > args.atol:
        raise SystemExit(f'Difference above --atol {args.atol}; nothing '
                         f'written.')

    torch.save(exported, paths['student.pth'])
    plain_cfg.dump(paths['student_config.py'])
    for note in notes:
        print(f'note: {note}')
    print(f'wrote {paths["student.pth"]} and {paths["student_config.py"]}')

    if args.onnx:
        preprocessor = plain_cfg.get('data_preprocessor') or {}
        metadata = dict(
            input='preprocessed images (N, 3, H, W) float32: RGB, '
            '(pixel - mean) / std',
            mean=str(list(preprocessor.get('mean', []))),
            std=str(list(preprocessor.get('std', []))),
            source_checkpoint=osp.abspath(args.checkpoint))
        export_onnx(student, inputs[:2], paths['student.onnx'], args.opset,
                    metadata)
        onnx_out = onnx_logits(paths['student.onnx'], inputs)
        onnx_diff = float(abs(onnx_out - logits.numpy()).max())
        print(f'onnxruntime vs PyTorch (opset {args.opset}, dynamic batch, '
              f'{len(inputs)} images): max |logit diff| = {onnx_diff:.3g}')
        if onnx_diff > args.atol:
            os.remove(paths['student.onnx'])
            raise SystemExit(f'ONNX differs by more than --atol '
                             f'{args.atol}; removed student.onnx.')
        print(f'wrote {paths["student.onnx"]}')


if __name__ == '__main__':
    with refusals_without_traceback():
        sys.exit(main())
