"""torchvision's transforms names: Compose, ToTensor, Normalize, Lambda (numpy arrays and tensors)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class ToTensor:
    """HxW or HxWxC uint8 (or float) array -> float32 CxHxW tensor; uint8 scaled to [0, 1]."""

    def __call__(self, pic):
        from ..ops.creation import from_numpy

        a = np.asarray(pic)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise TypeError(f"ToTensor: expected an HxW or HxWxC image, got shape {a.shape}")
        a = a.transpose(2, 0, 1)
        a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
        return from_numpy(np.ascontiguousarray(a))

    def __repr__(self):
        return "ToTensor()"


class Normalize:
    def __init__(self, mean, std):
        self.mean = tuple(np.atleast_1d(mean).tolist())
        self.std = tuple(np.atleast_1d(std).tolist())
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std evaluated to zero in {self.std}, leading to division by zero")

    def __call__(self, t):
        if not isinstance(t, Tensor):
            raise TypeError(f"Normalize: expected a Tensor (apply ToTensor first), got {type(t).__name__}")
        shape = (-1,) + (1,) * (t.ndim - 1)
        m = t.new_tensor(self.mean).reshape(shape)
        s = t.new_tensor(self.std).reshape(shape)
        return (t - m) / s

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class Lambda:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)
