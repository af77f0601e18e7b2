"""A dataset download that fails, told as where to put the files."""
import urllib.error
from contextlib import contextmanager
from typing import Optional

from ..utils.errors import config_error


def data_root(dataset_cfg) -> Optional[str]:
    """The ``data_root`` of a dataset config, through its wrappers."""
    while isinstance(dataset_cfg, dict):
        if dataset_cfg.get('data_root'):
            return dataset_cfg['data_root']
        dataset_cfg = dataset_cfg.get('dataset')
    return None


@contextmanager
def explain_failed_download(cfg):
    """Turn a failed download of a dataset (mmpretrain's ``CIFAR100``
    fetches the archive on first use) into one refusal that says where to
    put the files, instead of a traceback from urllib.

    Args:
        cfg (Config): The run's config, for the dataset's ``data_root``.
    """
    try:
        yield
    except urllib.error.URLError as error:
        for split in ('train', 'val', 'test'):
            loader = cfg.get(f'{split}_dataloader') or {}
            root = data_root(loader.get('dataset'))
            if root:
                break
        else:
            root = 'the data_root of the dataset'
        raise config_error(
            'dataset', f'it is not in {root} (or its files fail the '
            f'dataset\'s checksums) and downloading it failed '
            f'({error.reason})', f'Put the dataset in {root} yourself (for '
            f'CIFAR-100, the python version from '
            f'https://www.cs.toronto.edu/~kriz/cifar.html: '
            f'cifar-100-python.tar.gz or its extracted cifar-100-python '
            f'folder), or read a copy you have with '
            f"dataset=dict(type='LocalCIFAR100', data_root=...), the "
            f'folder that holds cifar-100-python.') from None
