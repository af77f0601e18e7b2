"""A dataset that is not there and cannot be downloaded (no network) ends
the run with one message saying where to put it, not a urllib
traceback."""
import urllib.error

from conftest import ROOT, run_main

QUICK = ROOT / 'configs/lsskd/lsskd_resnet20_1xb64-5e_cifar100-10pct.py'


def test_a_failed_download_says_where_to_put_the_files(tmp_path,
                                                       monkeypatch, capfd):
    def offline(*args, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name '
                                    'resolution')

    monkeypatch.setattr('mmpretrain.datasets.cifar.'
                        'download_and_extract_archive', offline)
    root = tmp_path / 'cifar100'
    out = run_main('tools/train.py', [
        QUICK, '--work-dir', tmp_path / 'work', '--cfg-options',
        f'train_dataloader.dataset.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}'
    ], monkeypatch, capfd, succeed=False)
    assert out.endswith('1')  # the refusal's exit status
    assert (f'LSSKDConfigError: dataset: it is not in {root} (or its '
            f"files fail the dataset's checksums) and downloading it failed "
            f'([Errno -3] Temporary failure in name resolution). Put the '
            f'dataset in {root} yourself (for CIFAR-100, the python version '
            f'from https://www.cs.toronto.edu/~kriz/cifar.html: '
            f'cifar-100-python.tar.gz or its extracted '
            f"cifar-100-python folder), or read a copy you have with dataset="
            f"dict(type='LocalCIFAR100', data_root=...)") in out
    assert 'Traceback' not in out
