"""Dropout1d, Dropout2d, Dropout3d (whole channels) and AlphaDropout (SELU's), active in training
mode only, over nn/functional_extra.py."""
from __future__ import annotations

from .. import functional_extra as FX
from .module import Module

__all__ = ["Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout"]


class _DropoutNd(Module):
    fn = None

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return type(self).fn(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_DropoutNd):
    fn = staticmethod(FX.dropout1d)


class Dropout2d(_DropoutNd):
    fn = staticmethod(FX.dropout2d)


class Dropout3d(_DropoutNd):
    fn = staticmethod(FX.dropout3d)


class AlphaDropout(_DropoutNd):
    fn = staticmethod(FX.alpha_dropout)
