"""nn.utils.rnn: PyTorch's PackedSequence and its helpers (pack_padded_sequence, pad_packed_sequence,
pad_sequence, pack_sequence, unpad_sequence, unpack_sequence), importable as devtensor.nn.utils.rnn.

A PackedSequence holds the steps of several sequences of different lengths, sorted by length, time
step after time step: `data` (sum of lengths, *), `batch_sizes` (a cpu int64 tensor: how many
sequences are still running at each step), and the permutations that sorted the batch. The recurrent
layers (nn/modules/rnn.py) take one and return one; their ops run only the active rows of each step.
Packing and unpacking are index gathers (one op each, differentiable)."""
from __future__ import annotations

import sys
from collections import namedtuple

import numpy as np

from .. import dtypes as _dt
from ..ops.creation import tensor as _tensor
from ..ops.shape import cat, stack
from ..tensor import Tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
           "unpad_sequence", "unpack_sequence", "invert_permutation"]


def invert_permutation(permutation):
    if permutation is None:
        return None
    p = np.asarray(permutation.cpu()._data)
    out = np.empty_like(p)
    out[p] = np.arange(p.size, dtype=p.dtype)
    return _tensor(out, device=permutation.device)


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """(data, batch_sizes, sorted_indices, unsorted_indices), as torch.nn.utils.rnn.PackedSequence.
    Build it with pack_padded_sequence / pack_sequence rather than by hand."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:  # PyTorch's PackedSequence(data_and_batch_sizes) form
            data, batch_sizes = data
        if batch_sizes.device.type != "cpu":
            raise ValueError("batch_sizes should always be on CPU. Instances of PackedSequence should never be "
                             "created manually. They should be instantiated by functions like pack_sequence and "
                             "pack_padded_sequences in nn.utils.rnn.")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        dev = data.device
        si = self.sorted_indices.to(dev) if self.sorted_indices is not None else None
        ui = self.unsorted_indices.to(dev) if self.unsorted_indices is not None else None
        return type(self)(data, self.batch_sizes, si, ui)

    def cuda(self, *args, **kwargs):
        return self.to("cuda" if not args else f"cuda:{args[0]}")

    def cpu(self):
        return self.to("cpu")

    def double(self):
        return self.to(_dt.float64)

    def float(self):
        return self.to(_dt.float32)

    def half(self):
        return self.to(_dt.float16)

    @property
    def is_cuda(self):
        return self.data.device.type == "cuda"

    def is_pinned(self):
        return False


def _lengths_np(lengths):
    if isinstance(lengths, Tensor):
        return np.asarray(lengths.cpu()._data).astype(np.int64).reshape(-1)
    return np.asarray(list(lengths), dtype=np.int64).reshape(-1)


def _pack_index(batch_sizes, B):
    """Flat indices into a (T*B, ...) padded array of the packed rows, step by step."""
    return np.concatenate([t * B + np.arange(n) for t, n in enumerate(batch_sizes)]).astype(np.int64)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) of sequences of the given lengths."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pack_padded_sequence: input must be a Tensor, not {type(input).__name__}")
    lens = _lengths_np(lengths)
    sorted_indices = None
    if enforce_sorted:
        if lens.size > 1 and np.any(np.diff(lens) > 0):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
                               "sidestep this requirement if you do not need ONNX exportability.")
    else:
        order = np.argsort(-lens, kind="stable")
        lens = lens[order]
        sorted_indices = _tensor(order.astype(np.int64), device=input.device)
        input = input.index_select(0 if batch_first else 1, sorted_indices)
    if lens.size and lens.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if batch_first:
        input = input.transpose(0, 1)
    T, B = input.shape[0], input.shape[1]
    if lens.size != B:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {lens.size} (batch_size={B})")
    if lens.size and lens[0] > T:
        raise RuntimeError(f"Expected sequence length to be at most {T}, but got a length of {lens[0]}")
    batch_sizes = np.array([(lens > t).sum() for t in range(int(lens[0]) if lens.size else 0)], dtype=np.int64)
    idx = _pack_index(batch_sizes, B)
    flat = input.reshape((T * B,) + tuple(input.shape[2:]))
    data = flat[_tensor(idx, device=input.device)]
    return PackedSequence(data, _tensor(batch_sizes), sorted_indices, None)


def packed_to_padded(data, batch_sizes, padding_value=0.0, total_length=None):
    """(sum of lengths, *) packed rows -> (T, B, *) padded, `padding_value` in the gaps (one gather)."""
    bs = [int(v) for v in batch_sizes]
    T = len(bs) if total_length is None else int(total_length)
    B = bs[0] if bs else 0
    N = int(data.shape[0])
    idx = np.full((T, B), N, dtype=np.int64)
    off = 0
    for t, n in enumerate(bs):
        idx[t, :n] = np.arange(off, off + n)
        off += n
    pad_row = data.new_full((1,) + tuple(data.shape[1:]), padding_value)
    return cat([data, pad_row], 0)[_tensor(idx, device=data.device)]


def padded_to_packed(padded, batch_sizes):
    """(T, B, *) padded -> (sum of lengths, *) packed rows (one gather)."""
    T, B = padded.shape[0], padded.shape[1]
    idx = _pack_index([int(v) for v in batch_sizes], B)
    return padded.reshape((T * B,) + tuple(padded.shape[2:]))[_tensor(idx, device=padded.device)]


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths as a cpu int64 tensor)."""
    data, batch_sizes, sorted_indices, unsorted_indices = sequence
    bs = [int(v) for v in np.asarray(batch_sizes._data)]
    T = len(bs)
    if total_length is not None:
        if total_length < T:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, but "
                             f"got total_length={total_length} and max sequence length being {T}")
    padded = packed_to_padded(data, bs, padding_value, total_length)
    B = bs[0] if bs else 0
    lengths = np.array([sum(1 for n in bs if n > b) for b in range(B)], dtype=np.int64)
    if batch_first:
        padded = padded.transpose(0, 1)
    if unsorted_indices is not None:
        padded = padded.index_select(0 if batch_first else 1, unsorted_indices)
        lengths = lengths[np.asarray(unsorted_indices.cpu()._data)]
    return padded, _tensor(lengths)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of shape (L_i, *) into (max L, B, *) (or (B, max L, *)), padding with padding_value."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    L = max(int(s.shape[0]) for s in sequences)
    out = []
    for s in sequences:
        n = int(s.shape[0])
        if n < L:
            fill = s.new_full((L - n,) + tuple(s.shape[1:]), padding_value)
            s = cat([s, fill], 0) if padding_side == "right" else cat([fill, s], 0)
        out.append(s)
    return stack(out, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    lengths = [int(s.shape[0]) for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [padded_sequences[i, :int(n)] for i, n in enumerate(_lengths_np(lengths))]


def unpack_sequence(packed_sequences):
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


# `import devtensor.nn.utils.rnn` and `from devtensor.nn.utils.rnn import ...` work as for torch
# (nn.utils is a module, not a package: this module stands in for its `rnn` submodule)
sys.modules.setdefault(__name__.rsplit(".", 1)[0] + ".utils.rnn", sys.modules[__name__])
