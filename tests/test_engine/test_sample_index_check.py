"""Every step's sample indices are checked where they enter the model: in
the store's range, and each the index its dataset gave that very sample.
A transform or dataset that rewrites them is named; repeats a dataset
wrapper or several workers make pass."""
import pytest
from conftest import NUM_CLASSES, TRAIN_PER_CLASS, make_cfg
from mmcv.transforms import BaseTransform
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS, TRANSFORMS

from mmlsskd.datasets.local_cifar import LocalCIFAR100
from mmlsskd.utils import LSSKDConfigError

NUM_TRAIN = NUM_CLASSES * TRAIN_PER_CLASS


@TRANSFORMS.register_module(force=True)
class ShiftSampleIndex(BaseTransform):
    """Rewrites ``sample_idx`` by ``shift`` (a bug a user's transform
    could have)."""

    def __init__(self, shift: int = 1, modulo: bool = True) -> None:
        self.shift, self.modulo = shift, modulo

    def transform(self, results: dict) -> dict:
        index = results['sample_idx'] + self.shift
        results['sample_idx'] = index % NUM_TRAIN if self.modulo else index
        return results


@DATASETS.register_module(force=True)
class NextSampleCIFAR(LocalCIFAR100):
    """Describes its samples honestly, but returns the next one."""

    def __getitem__(self, idx: int) -> dict:
        return super().__getitem__((idx + 1) % len(self))


def with_transform(options, tmp_path, transform):
    cfg = make_cfg(options, tmp_path, train_cfg=dict(max_epochs=1))
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline.insert(len(pipeline) - 1, transform)  # before PackInputs
    return cfg


def test_a_transform_that_rewrites_indices_is_named(tiny_cfg_options,
                                                    tmp_path):
    cfg = with_transform(tiny_cfg_options, tmp_path,
                         dict(type='ShiftSampleIndex'))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
            LSSKDConfigError,
            match=r'sample_idx: sample 0 of the batch is index (\d+) of '
            r'LocalCIFAR100, which describes it as sample_idx=\1, but it '
            r"reached the model as sample_idx=\d+: the pipeline's "
            r'ShiftSampleIndex changes it \(\1 to \d+\), so two images '
            r"would share one row of past predictions. Keep 'sample_idx' "):
        runner.train()
    # Refused at the first step's door: nothing was trained or stored.
    assert runner.iter == 0
    assert not list(tmp_path.glob('*.pth'))


def test_an_index_outside_the_store_is_refused_at_the_door(
        tiny_cfg_options, tmp_path):
    cfg = with_transform(tiny_cfg_options, tmp_path,
                         dict(type='ShiftSampleIndex', shift=NUM_TRAIN,
                              modulo=False))
    with pytest.raises(LSSKDConfigError,
                       match=rf'sample_idx: sample 0 of the batch carries '
                       rf'sample_idx=\d+, outside the \[0, {NUM_TRAIN}\)'):
        Runner.from_cfg(cfg).train()


def test_a_dataset_that_returns_another_sample_is_named(tiny_cfg_options,
                                                        tmp_path):
    cfg = make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1))
    cfg.train_dataloader.dataset.type = 'NextSampleCIFAR'
    with pytest.raises(LSSKDConfigError,
                       match=r'no transform of its pipeline changes it when '
                       r'replayed, so NextSampleCIFAR \(or a dataset it '
                       r'wraps\) returned another index than it describes'):
        Runner.from_cfg(cfg).train()


@pytest.mark.parametrize('loader', ['repeat', 'workers'])
def test_repeats_and_worker_processes_pass_the_door(tiny_cfg_options,
                                                    tmp_path, loader):
    """RepeatDataset gives one image twice an epoch under its own index;
    two persistent workers deliver the batches in the sampler's order,
    epoch after epoch."""
    cfg = make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=2))
    if loader == 'repeat':
        cfg.train_dataloader.dataset = dict(
            type='RepeatDataset', times=2,
            dataset=cfg.train_dataloader.dataset)
    else:
        cfg.train_dataloader.update(num_workers=2, persistent_workers=True)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.epoch == 2
    # The check saw every index the sampler drew, and used each.
    hook = next(h for h in runner.hooks if hasattr(h, '_index_check'))
    assert hook._index_check.asked is not None
    assert len(hook._index_check.asked) == 0
