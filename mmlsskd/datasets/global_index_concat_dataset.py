from mmengine.dataset import ConcatDataset
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class GlobalIndexConcatDataset(ConcatDataset):
    """``ConcatDataset`` whose samples carry their index in the whole.

    mmengine's ``ConcatDataset`` returns each part's own ``sample_idx``
    (0, 1, ... in every part), so a per-sample store such as LSSKD's past
    predictions would mix up images of different parts. Here sample ``i`` of
    the concatenation has ``sample_idx == i``.

    Args are those of mmengine's ``ConcatDataset``.
    """

    renumbers_samples = True  # sample_idx is this dataset's own index

    def get_data_info(self, idx: int) -> dict:
        """The sample's annotation, its ``sample_idx`` the global index."""
        info = super().get_data_info(idx)
        info['sample_idx'] = idx
        return info

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        part, _ = self._get_ori_dataset_idx(idx)
        return self.datasets[part].pipeline(self.get_data_info(idx))
