"""nn.init, completed: orthogonal_, sparse_ and dirac_ (PyTorch's algorithms), re-exported by
nn/init.py. Random values come from devtensor's generator on the tensor's device (dt.manual_seed
makes them reproducible); the QR factorisation of orthogonal_ runs on the host."""
from __future__ import annotations

import math

import numpy as np

from ..autograd.grad_mode import no_grad
from ..ops.creation import randn, randperm, tensor

__all__ = ["orthogonal_", "sparse_", "dirac_"]


def orthogonal_(tensor_, gain=1, generator=None):
    """Fill with a (semi-)orthogonal matrix (Saxe et al. 2013): QR of a normal matrix, signs fixed by
    R's diagonal; tensors of more than 2 dims are flattened to (size(0), rest)."""
    if tensor_.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor_.numel() == 0:
        return tensor_
    rows = tensor_.shape[0]
    cols = tensor_.numel() // rows
    flat = np.asarray(randn(rows, cols, dtype=tensor_.dtype, device=tensor_.device, generator=generator).cpu()._data,
                      dtype=np.float64)
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    with no_grad():
        tensor_.copy_(tensor(q.reshape(tuple(tensor_.shape)) * gain, dtype=tensor_.dtype, device=tensor_.device))
    return tensor_


def sparse_(tensor_, sparsity, std=0.01, generator=None):
    """A 2-D tensor of N(0, std) values with ceil(sparsity * rows) zeros in every column (Martens 2010)."""
    if tensor_.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = tensor_.shape
    num_zeros = int(math.ceil(sparsity * rows))
    with no_grad():
        tensor_.copy_(randn(rows, cols, dtype=tensor_.dtype, device=tensor_.device, generator=generator) * std)
        for c in range(cols):
            zero_rows = randperm(rows, generator=generator)[:num_zeros]
            if num_zeros:
                tensor_[zero_rows, c] = 0
    return tensor_


def dirac_(tensor_, groups=1):
    """The Dirac delta of a 3-, 4- or 5-D convolution weight: each output channel (within a group)
    copies its input channel, so the convolution is the identity."""
    if tensor_.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    sizes = tuple(tensor_.shape)
    if sizes[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out_per_group = sizes[0] // groups
    w = np.zeros(sizes)
    centre = tuple(s // 2 for s in sizes[2:])
    for g in range(groups):
        for d in range(min(out_per_group, sizes[1])):
            w[(g * out_per_group + d, d) + centre] = 1
    with no_grad():
        tensor_.copy_(tensor(w, dtype=tensor_.dtype, device=tensor_.device))
    return tensor_


orthogonal = orthogonal_
sparse = sparse_
dirac = dirac_
