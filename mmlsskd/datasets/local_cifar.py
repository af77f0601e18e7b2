from mmpretrain.datasets import CIFAR100
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class LocalCIFAR100(CIFAR100):
    """CIFAR-100 read from a local ``cifar-100-python`` folder, unchecked.

    mmpretrain's ``CIFAR100`` checks the files against the md5 sums of the
    official archive, which rejects a faithful copy whose bytes differ (a
    re-pickled one, or one made for tests). This reads the same pickle
    layout (``train``, ``test`` and ``meta`` in ``data_root``/
    ``cifar-100-python``) without the checksums and never downloads. The
    class names come from the folder's ``meta`` file, so the dataset
    reports the classes it holds.

    Args:
        data_root (str): The folder that holds ``cifar-100-python``.
        **kwargs: Other arguments of mmpretrain's ``CIFAR100``.
    """

    train_list = [['train', None]]
    test_list = [['test', None]]
    meta = {'filename': 'meta', 'key': 'fine_label_names'}
    METAINFO = {}  # read the classes from the meta file

    def __init__(self, data_root: str = '', **kwargs) -> None:
        if kwargs.pop('download', False):
            raise ValueError(
                'LocalCIFAR100 reads an existing folder and never downloads; '
                "use type='CIFAR100' to download the official archive.")
        super().__init__(data_root=data_root, download=False, **kwargs)
