"""What the CIFAR-100 benchmark scripts share: which student, which data."""
import argparse
from pathlib import Path


def add_student_arguments(parser: argparse.ArgumentParser,
                          data_required: bool = True) -> None:
    """The data folder and the student, as every such script takes them;
    without ``data_required`` the folder may be left out (a script that
    also writes its docs from a committed record needs no data for it)."""
    parser.add_argument(
        'data', nargs=None if data_required else '?',
        help='the cifar-100-python folder (train, test, meta)')
    parser.add_argument(
        '--model', default='resnet20',
        help='a CIFAR-100 student with shipped configs (default resnet20)')


def local_cifar100(data: str, split: str, pipeline) -> dict:
    """A ``LocalCIFAR100`` config of one split of the ``data`` folder."""
    return dict(type='LocalCIFAR100',
                data_root=str(Path(data).resolve().parent),
                split=split,
                pipeline=pipeline)
