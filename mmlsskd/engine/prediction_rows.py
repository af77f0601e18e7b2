"""How the past-prediction store keeps its probability rows: dense, or the
top-k entries of every row."""
from typing import Dict, Sequence

import torch

DTYPES = {
    'float32': torch.float32,
    'float16': torch.float16,
    'bfloat16': torch.bfloat16
}


class DenseRows:
    """Probability rows kept whole, in ``dtype``.

    Args:
        shape (Sequence[int]): Shape of the row tensor, rows last.
        dtype (torch.dtype): Storage type.
        device (torch.device): Where the rows live. Defaults to the CPU.
        pin_memory (bool): Whether host rows are page-locked, so that
            copies to and from a GPU run asynchronously. Defaults to False.
    """

    def __init__(self, shape: Sequence[int], dtype: torch.dtype,
                 device: torch.device = torch.device('cpu'),
                 pin_memory: bool = False) -> None:
        self.data = torch.zeros(
            *shape, dtype=dtype, device=device, pin_memory=pin_memory)

    def read(self, index) -> torch.Tensor:
        """The rows at ``index``, as float32."""
        return self.data[index].float()

    def write(self, index, rows: torch.Tensor, valid=None) -> None:
        """Store ``rows`` at ``index`` (only where ``valid``, a bool tensor
        that broadcasts against them, if given)."""
        rows = rows.to(self.data.dtype)
        if valid is not None:
            rows = torch.where(valid, rows, self.data[index])
        self.data[index] = rows

    def tensors(self, name: str) -> Dict[str, torch.Tensor]:
        """The stored tensors, keyed for a state dict."""
        return {name: self.data}


class TopKRows:
    """The ``k`` largest entries of every probability row and their indices.

    Reading a row puts the ``k`` kept probabilities back at their indices
    and spreads the remaining mass ``1 - sum(kept)`` evenly over the other
    ``L - k`` entries, so every row still sums to one; the tail of the
    distribution becomes flat.

    Args:
        shape (Sequence[int]): Shape of the dense row tensor, rows last.
        k (int): Entries kept per row (at most the row length).
        dtype (torch.dtype): Storage type of the kept probabilities.
        device (torch.device): Where the rows live. Defaults to the CPU.
        pin_memory (bool): Whether host rows are page-locked.
            Defaults to False.
    """

    def __init__(self, shape: Sequence[int], k: int, dtype: torch.dtype,
                 device: torch.device = torch.device('cpu'),
                 pin_memory: bool = False) -> None:
        self.length = shape[-1]
        self.k = min(k, self.length)
        index_dtype = torch.int16 if self.length <= 2**15 else torch.int32
        self.values = torch.zeros(
            *shape[:-1], self.k, dtype=dtype, device=device,
            pin_memory=pin_memory)
        self.indices = torch.zeros(
            *shape[:-1], self.k, dtype=index_dtype, device=device,
            pin_memory=pin_memory)

    def read(self, index) -> torch.Tensor:
        """The rows at ``index``, densified, as float32."""
        values = self.values[index].float()
        indices = self.indices[index].long()
        rest = self.length - self.k
        tail = (1 - values.sum(-1, keepdim=True)).clamp_min(0) / max(rest, 1)
        rows = tail.expand(*values.shape[:-1], self.length).clone()
        return rows.scatter_(-1, indices, values)

    def write(self, index, rows: torch.Tensor, valid=None) -> None:
        """Keep the top ``k`` of every row of ``rows`` at ``index`` (only
        where ``valid``, if given)."""
        values, indices = rows.float().topk(self.k, dim=-1)
        values = values.to(self.values.dtype)
        indices = indices.to(self.indices.dtype)
        if valid is not None:
            values = torch.where(valid, values, self.values[index])
            indices = torch.where(valid, indices, self.indices[index])
        self.values[index] = values
        self.indices[index] = indices

    def tensors(self, name: str) -> Dict[str, torch.Tensor]:
        """The stored tensors, keyed for a state dict."""
        return {f'{name}_values': self.values, f'{name}_indices': self.indices}


def make_rows(shape: Sequence[int], dtype: str, topk=None, **placement):
    """Dense rows, or top-k rows when ``topk`` is given; ``placement`` is
    ``device`` and ``pin_memory``."""
    if topk is None:
        return DenseRows(shape, DTYPES[dtype], **placement)
    return TopKRows(shape, topk, DTYPES[dtype], **placement)
