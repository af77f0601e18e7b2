"""The sample indices of every step, checked where they enter the model.

The store's keys are checked where the dataset describes its samples
(:func:`mmlsskd.datasets.training_set_checks.check_sample_index_space`),
but a step reads what the whole data pipeline made of them: a transform or
a dataset's ``__getitem__`` that rewrites ``sample_idx`` would make two
images share a row of past predictions, silently. Each index the sampler
asks for is recorded as the data loader draws it, and each sample of the
batch must carry the ``sample_idx`` its dataset's ``get_data_info`` gives
that index. The indices are Python ints in the data samples, read on the
host before the data preprocessor moves anything: next to free.
"""
import collections
from typing import Deque, Iterator, List, Optional

from ..utils.errors import config_error


class RecordingSampler:
    """Yields what ``sampler`` yields, recording every index in order.

    Args:
        sampler: The data loader's sampler (inside its batch sampler).
        asked (collections.deque): Where the indices go, oldest first.
    """

    def __init__(self, sampler, asked: Deque[int]) -> None:
        self.sampler = sampler
        self.asked = asked

    def __iter__(self) -> Iterator[int]:
        for index in self.sampler:
            self.asked.append(index)
            yield index

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str):
        # set_epoch and the rest of the wrapped sampler's interface.
        return getattr(self.__dict__['sampler'], name)


class SampleIndexCheck:
    """Every step's ``sample_idx`` against the index its dataset gave.

    Repeats that ``RepeatDataset``, ``ClassBalancedDataset`` or a
    distributed sampler's padding make are the dataset's own answers and
    pass. A loader whose batch sampler hides its sampler, or a dataset
    without ``get_data_info``, gets the range check alone.

    Args:
        loader (DataLoader): The training data loader.
        num_samples (int): The store's rows: indices lie in ``[0, N)``.
    """

    def __init__(self, loader, num_samples: int) -> None:
        self.dataset = loader.dataset
        self.num_samples = num_samples
        self.asked: Optional[Deque[int]] = None
        batch_sampler = getattr(loader, 'batch_sampler', None)
        describes = hasattr(self.dataset, 'get_data_info')
        if describes and hasattr(batch_sampler, 'sampler'):
            sampler = batch_sampler.sampler
            if isinstance(sampler, RecordingSampler):  # a second run
                sampler = sampler.sampler
            self.asked = collections.deque()
            batch_sampler.sampler = RecordingSampler(sampler, self.asked)

    def start_epoch(self) -> None:
        """Forget what the last epoch drew and did not use (a dropped last
        batch): the loader draws the epoch's indices anew."""
        if self.asked is not None:
            self.asked.clear()

    def check(self, given: List[int]) -> None:
        """Check the ``sample_idx`` of one batch, in batch order.

        Raises:
            LSSKDConfigError: Naming the sample, the index asked for, the
                one its dataset gives, the one that arrived, and the
                transform or dataset that changed it.
        """
        for position, index in enumerate(given):
            if not (isinstance(index, int) and
                    0 <= index < self.num_samples):
                raise config_error(
                    'sample_idx', f'sample {position} of the batch carries '
                    f'sample_idx={index!r}, outside the [0, '
                    f'{self.num_samples}) of the training set the '
                    f'past-prediction store was sized for',
                    'Each data sample must carry its index in the training '
                    'set; dataset wrappers must keep indices within their '
                    'length.')
        if self.asked is None or len(self.asked) < len(given):
            return
        asked = [self.asked.popleft() for _ in given]
        for position, (index, carried) in enumerate(zip(asked, given)):
            expected = self.dataset.get_data_info(index).get(
                'sample_idx', index)
            if carried != expected:
                raise config_error(
                    'sample_idx', f'sample {position} of the batch is index '
                    f'{index} of {type(self.dataset).__name__}, which '
                    f'describes it as sample_idx={expected}, but it reached '
                    f'the model as sample_idx={carried}: '
                    f'{self.culprit(index, expected)}, so two images would '
                    f'share one row of past predictions', 'Keep '
                    "'sample_idx' as the dataset sets it: no transform may "
                    'change it, and a dataset that returns another sample '
                    'must give that sample\'s own index.')

    def culprit(self, index: int, expected: int) -> str:
        """Which transform changes ``sample_idx`` when the sample goes
        through its dataset's pipeline again, else the dataset."""
        dataset = self.dataset
        while getattr(dataset, 'pipeline', None) is None and \
                getattr(dataset, 'dataset', None) is not None:
            dataset = dataset.dataset
        transforms = getattr(getattr(dataset, 'pipeline', None),
                             'transforms', None)
        if transforms is not None:
            data = dict(self.dataset.get_data_info(index))
            carried = expected
            for transform in transforms:
                data = transform(data)
                if data is None:
                    break
                now = data.get('sample_idx', carried)
                samples = data.get('data_samples')
                if samples is not None and 'sample_idx' in samples:
                    now = samples.sample_idx
                if now != carried:
                    return (f'the pipeline\'s {type(transform).__name__} '
                            f'changes it ({carried} to {now})')
                carried = now
        return (f'no transform of its pipeline changes it when replayed, so '
                f'{type(self.dataset).__name__} (or a dataset it wraps) '
                f'returned another index than it describes')
