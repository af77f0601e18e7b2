import os
from typing import Dict, Optional, Union

import torch

from ..structures import PastPredictions
from ..utils.errors import LSSKDCheckpointError, config_error
from .prediction_rows import DTYPES, make_rows


def check_sample_indices(indices: torch.Tensor, num_samples: int) -> None:
    """Sample indices must lie in the store's ``[0, num_samples)``."""
    if indices.numel() and (int(indices.min()) < 0
                            or int(indices.max()) >= num_samples):
        raise config_error(
            'sample_idx', f'got {int(indices.min())}..{int(indices.max())}, '
            f'outside the [0, {num_samples}) of the training set the '
            f'past-prediction store was sized for',
            'Each data sample must carry its index in the training set; '
            'dataset wrappers must keep indices within their length.')


def check_store_options(dtype: str, topk, branch_views: str,
                        device='cpu') -> None:
    """The past-prediction store's storage settings."""
    subject = 'PastPredictionHook.store'
    kind = device
    if device not in ('cpu', 'pinned', 'auto'):
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError):
            raise config_error(
                subject, f"device must be 'cpu', 'pinned', 'auto' or a torch "
                f'device such as \'cuda\', got {device!r}',
                "'auto' keeps the store on the GPU when it fits.") from None
    if kind in ('pinned', 'cuda'):
        if not torch.cuda.is_available():
            raise config_error(
                subject, f'device={device!r} needs CUDA, which this machine '
                f'does not have', "Use device='cpu', or 'auto' to put the "
                'store on the GPU where there is one.')
    if dtype not in ('float32', 'float16', 'bfloat16'):
        raise config_error(subject, f'dtype must be float32, float16 or '
                           f'bfloat16, got {dtype!r}',
                           "float16 halves the store's memory.")
    if topk is not None and not (isinstance(topk, int) and topk > 0):
        raise config_error(subject, f'topk must be a positive int or None, '
                           f'got {topk!r}',
                           'It is the number of probabilities kept per row.')
    if branch_views not in ('all', 'unrotated'):
        raise config_error(subject, f"branch_views must be 'all' or "
                           f"'unrotated', got {branch_views!r}",
                           "'unrotated' keeps one view of every branch.")


class PastPredictionStore:
    """Per-sample predictions of the previous epoch.

    Holds, for every training sample, the final classifier's distribution
    (C values) and every auxiliary branch's augmented distribution for each
    of the K views (K x C*K values per branch), plus the epoch each sample
    was last written in (-1: never). Dense fp32 that is
    ``4 * (C + S * K * C * K)`` bytes per sample: 1.3 GB for CIFAR-100 with
    four branches, 330 GB for ImageNet-1k. The bounded forms:

    - ``dtype='float16'`` (or ``'bfloat16'``) halves it;
    - ``topk=k`` keeps the ``k`` largest probabilities of every row and their
      indices, spreading the rest of the mass evenly on reading
      (:class:`TopKRows`); it applies to the final and the branch rows;
    - ``branch_views='unrotated'`` keeps the branches' distribution of the
      unrotated view only; the rotated views then train on their hard joint
      labels (their past weight is 0).

    Args:
        num_samples (int): Size of the training set.
        num_classes (int): Number of classes C.
        num_views (int): Number of transforms K.
        num_branches (int): Number of auxiliary branches.
        dtype (str): ``'float32'``, ``'float16'`` or ``'bfloat16'``.
            Defaults to ``'float32'``.
        topk (int, optional): Entries kept per row; None keeps rows whole.
            Defaults to None.
        branch_views (str): ``'all'`` or ``'unrotated'``. Defaults to
            ``'all'``.
        device (str | torch.device): Where the rows live: ``'cpu'`` (host
            memory), ``'pinned'`` (page-locked host memory, so that the
            copies to and from a GPU are asynchronous), or a device such as
            ``'cuda'``: then lookups and updates stay on the device and a
            training step never waits for a copy to the host.
            Defaults to ``'cpu'``.
    """

    def __init__(self,
                 num_samples: int,
                 num_classes: int,
                 num_views: int,
                 num_branches: int,
                 dtype: str = 'float32',
                 topk: Optional[int] = None,
                 branch_views: str = 'all',
                 device: Union[str, torch.device] = 'cpu') -> None:
        check_store_options(dtype, topk, branch_views, device)
        self.pinned = device == 'pinned'
        self.device = torch.device('cpu' if self.pinned else device)
        placement = dict(device=self.device, pin_memory=self.pinned)
        self.num_samples = num_samples
        self.num_classes = num_classes
        self.num_views = num_views
        self.num_branches = num_branches
        self.dtype, self.topk, self.branch_views = dtype, topk, branch_views
        self.stored_views = num_views if branch_views == 'all' else 1
        self._final = make_rows((num_samples, num_classes), dtype, topk,
                                **placement)
        self._branches = make_rows(
            (num_branches, num_samples, self.stored_views,
             num_classes * num_views), dtype, topk, **placement)
        self.written_epoch = torch.full((num_samples, ), -1,
                                        dtype=torch.long, **placement)

    @staticmethod
    def estimate_nbytes(num_samples: int,
                        num_classes: int,
                        num_views: int,
                        num_branches: int,
                        dtype: str = 'float32',
                        topk: Optional[int] = None,
                        branch_views: str = 'all') -> int:
        """Bytes a store of these settings holds, before allocating it."""
        value_size = DTYPES[dtype].itemsize
        stored_views = num_views if branch_views == 'all' else 1
        joint = num_classes * num_views
        lengths = [num_classes] + [joint] * (num_branches * stored_views)
        if topk is None:
            row_bytes = sum(lengths) * value_size
        else:
            row_bytes = sum(
                min(topk, n) * (value_size + (2 if n <= 2**15 else 4))
                for n in lengths)
        return num_samples * (row_bytes + 8)  # + written_epoch (int64)

    @property
    def final(self) -> torch.Tensor:
        """Final distributions (N, C): the stored tensor when dense, else a
        densified copy."""
        rows = self._final
        return rows.data if hasattr(rows, 'data') else rows.read(slice(None))

    @property
    def branches(self) -> torch.Tensor:
        """Branch SADs (S, N, K_stored, C * K), as :attr:`final`."""
        rows = self._branches
        return rows.data if hasattr(rows, 'data') else rows.read(
            (slice(None), slice(None)))

    @property
    def nbytes(self) -> int:
        """Memory held by the store (on its device), in bytes."""
        return sum(t.numel() * t.element_size()
                   for t in self.state_dict().values())

    def _check_indices(self, indices: torch.Tensor) -> None:
        check_sample_indices(indices, self.num_samples)

    def lookup(self, indices: torch.Tensor,
               device: Optional[torch.device] = None) -> PastPredictions:
        """Past predictions of a batch.

        Args:
            indices (torch.Tensor): Sample indices of shape (B, ), on the
                host (as the data samples carry them), where their range is
                checked without waiting for a device.
            device (torch.device, optional): Where to put the result.

        Returns:
            PastPredictions: The batch's entries, branch rows view-major.
        """
        self._check_indices(indices)
        indices = indices.to(self.device, non_blocking=True)
        batch, joint = len(indices), self.num_classes * self.num_views
        written = self.written_epoch[indices] >= 0
        stored = self._branches.read((slice(None), indices))
        if self.stored_views < self.num_views:
            # Only the unrotated view is kept: the others have no target.
            rows = stored.new_zeros(self.num_branches, batch, self.num_views,
                                    joint)
            rows[:, :, :self.stored_views] = stored
            stored = rows
            branch_written = torch.zeros(self.num_views, batch,
                                         dtype=torch.bool,
                                         device=self.device)
            branch_written[:self.stored_views] = written
        else:
            branch_written = written.repeat(self.num_views).view(
                self.num_views, batch)
        # (S, B, K, CK) -> (S, K, B, CK) -> (S, K*B, CK): the model's order.
        branches = stored.transpose(1, 2).reshape(self.num_branches,
                                                  self.num_views * batch,
                                                  joint)
        return PastPredictions(
            final=self._final.read(indices).to(device, non_blocking=True),
            branches=branches.to(device, non_blocking=True),
            written=written.to(device, non_blocking=True),
            branch_written=branch_written.reshape(-1).to(
                device, non_blocking=True))

    def update(self,
               indices: torch.Tensor,
               final: torch.Tensor,
               branches: torch.Tensor,
               epoch: int,
               valid: Optional[torch.Tensor] = None) -> None:
        """Write one step's detached predictions.

        Args:
            indices (torch.Tensor): Sample indices of shape (B, ), on the
                host, where their range is checked. A sample that appears
                twice (a distributed sampler pads an epoch with repeats)
                gets one of its predictions, both being valid.
            final (torch.Tensor): Final-classifier distributions, (B, C).
            branches (torch.Tensor): Branch SADs per sample and view,
                (num_branches, B, K, C * K).
            epoch (int): The current epoch.
            valid (torch.Tensor, optional): A 0-dim bool on the store's
                device: write only if true (a step whose loss was not finite
                writes nothing), decided without a host read.
                Defaults to None (write).
        """
        self._check_indices(indices)
        # To a device store nothing leaves the device; to a host store the
        # copy waits for the step (asynchronous only into pinned memory).
        device = self.device
        if valid is not None:
            valid = valid.to(device, non_blocking=True)
        indices = indices.to(device, non_blocking=True)
        self._final.write(indices,
                          final.detach().to(device, non_blocking=True),
                          valid)
        self._branches.write(
            (slice(None), indices),
            branches.detach()[:, :, :self.stored_views].to(
                device, non_blocking=True), valid)
        if valid is None:
            self.written_epoch[indices] = epoch
        else:
            self.written_epoch[indices] = torch.where(
                valid, epoch, self.written_epoch[indices])

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """The store's own tensors (no copies), for a checkpoint."""
        state = dict(self._final.tensors('final'))
        state.update(self._branches.tensors('branches'))
        state['written_epoch'] = self.written_epoch
        return state

    def load_state_dict(self, state: Dict[str, torch.Tensor],
                        source: str = 'the checkpoint') -> None:
        """Restore the store from :meth:`state_dict`.

        A saved store of another ``dtype`` is converted; any other
        difference is refused, and so are rows that are not probability
        distributions (an edited or damaged file).

        Args:
            state (dict): A :meth:`state_dict`.
            source (str): Where it comes from, for messages.

        Raises:
            LSSKDCheckpointError: If the saved store was made for another
                dataset size, number of classes, views, branches, ``topk``
                or ``branch_views``, or if a written row is not a
                distribution.
        """
        expected = self.state_dict()
        for key, tensor in expected.items():
            saved = state.get(key)
            if saved is None or tuple(saved.shape) != tuple(tensor.shape):
                got = None if saved is None else tuple(saved.shape)
                raise LSSKDCheckpointError(
                    f'resume: the past-prediction store in {source} '
                    f'does not fit this run: {key!r} has shape {got}, '
                    f'expected {tuple(tensor.shape)} '
                    f'(samples={self.num_samples}, '
                    f'classes={self.num_classes}, views={self.num_views}, '
                    f'branches={self.num_branches}, dtype={self.dtype}, '
                    f'topk={self.topk}, branch_views={self.branch_views}; '
                    f'saved keys {sorted(state)}). Resume with the dataset, '
                    f'model and store settings the checkpoint was trained '
                    f'with, or start from its weights alone with load_from.')
        for key, tensor in expected.items():
            tensor.copy_(state[key])
        problem = self._row_problem()
        if problem is not None:
            raise LSSKDCheckpointError(
                f'resume: the past-prediction store in {source} is not a set '
                f'of probability distributions ({problem}), so it was edited '
                f'or damaged. Resume from an earlier checkpoint of the run, '
                f'or start from its weights alone with load_from (a fresh '
                f'store).')

    def _row_problem(self, chunk: int = 4096) -> Optional[str]:
        """What is wrong with the written rows, or None: every value finite
        and in [0, 1], every row summing to 1 (within rounding), every
        written epoch at least -1."""
        if bool((self.written_epoch < -1).any()):
            return 'written_epoch holds values below -1'
        # Not the storage type's rounding alone: a run trained in bfloat16
        # (CPU autocast, where the softmax runs in bfloat16) writes rows
        # rounded to bfloat16 into a float32 store. Each rounding moves a
        # row's sum by at most 2**-8, so two (the model's, the store's)
        # stay well inside this; rows that are not distributions (logits,
        # scaled or zeroed rows) do not.
        tolerance = 2e-2
        written = self.written_epoch >= 0
        for name, rows, prefix in (('final', self._final, ()),
                                   ('branches', self._branches,
                                    (slice(None), ))):
            for start in range(0, self.num_samples, chunk):
                span = slice(start, start + chunk)
                values = rows.read(prefix + (span, ))
                values = values[(slice(None), ) * len(prefix) +
                                (written[span], )]
                if not values.numel():
                    continue
                if not bool(torch.isfinite(values).all()):
                    return f'{name} rows hold NaN or infinite values'
                low, high = values.min().item(), values.max().item()
                if low < -tolerance or high > 1 + tolerance:
                    return (f'{name} rows hold values in [{low:g}, {high:g}],'
                            f' outside [0, 1]')
                error = (values.sum(-1) - 1).abs().max().item()
                if error > tolerance:
                    return f'{name} rows sum to 1 +- {error:g}, not to 1'
        return None


def available_host_memory() -> Optional[int]:
    """Bytes the host can still give without swapping (Linux's
    MemAvailable); None where unknown."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def store_device(sizes: dict, options: dict, model_device: torch.device):
    """Where a store of ``sizes`` with ``options`` goes, checked to fit.

    ``device='auto'`` is the model's GPU when the store takes at most a
    quarter of its free memory, else pinned host memory; the host without a
    GPU.

    Raises:
        LSSKDConfigError: If the machine cannot hold it, with a bounded
            store setting that would fit.
    """
    device = options['device']
    nbytes = PastPredictionStore.estimate_nbytes(
        **sizes, **{k: v for k, v in options.items() if k != 'device'})
    if device == 'auto':
        device = 'cpu'
        if model_device.type == 'cuda':
            free, _ = torch.cuda.mem_get_info(model_device)
            device = model_device if nbytes <= free / 4 else 'pinned'
    _check_store_fits(sizes, options, nbytes, device)
    return device


def _check_store_fits(sizes: dict, options: dict, nbytes: int,
                      device) -> None:
    """Stop before allocating a store the machine cannot hold, with the
    store setting that would fit."""
    if torch.device('cpu' if device == 'pinned' else device).type == \
            'cuda':
        available, _ = torch.cuda.mem_get_info(device)
        where = f'free memory of {device}'
        sharing = 1
    else:
        available = available_host_memory()
        where = 'available host memory'
        # Every rank of this machine holds a whole store.
        sharing = int(os.environ.get('LOCAL_WORLD_SIZE', 1))
    if available is None or nbytes * sharing <= available:
        return
    bounded = dict(options, device=options.get('device', 'auto'))
    for step in (dict(dtype='float16'), dict(topk=32),
                 dict(branch_views='unrotated'), dict(topk=8)):
        bounded.update(step)
        fits = PastPredictionStore.estimate_nbytes(
            **sizes,
            **{k: v for k, v in bounded.items() if k != 'device'})
        if fits * sharing <= available / 2:
            break
    setting = ', '.join(f'{k}={v!r}' for k, v in bounded.items()
                        if k != 'device')
    raise config_error(
        'PastPredictionHook.store', f'the store of {sizes["num_samples"]} '
        f'samples needs {nbytes * sharing / 2**30:.1f} GiB'
        f'{f" ({sharing} ranks)" if sharing > 1 else ""}, more than the '
        f'{available / 2**30:.1f} GiB of {where}',
        f"Bound it: give custom_hooks' PastPredictionHook "
        f'store=dict({setting}), which needs '
        f'{fits * sharing / 2**30:.3f} GiB (the bounded forms: '
        f'docs/benchmarks.md).')
