"""MaxPool1d, AvgPool1d, AdaptiveAvgPool1d/2d and AdaptiveMaxPool1d/2d: PyTorch's arguments and reprs,
over the functional forms in nn/functional_extra.py (1-D pooling runs the 2-D kernels on a unit
height; adaptive pooling runs the fixed-window kernels where the windows divide the input evenly)."""
from __future__ import annotations

from .. import functional_extra as FX
from .module import Module
from .pooling import _AvgPoolNd, _MaxPoolNd

__all__ = ["MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d",
           "AdaptiveMaxPool2d"]


class MaxPool1d(_MaxPoolNd):
    def forward(self, input):
        return FX.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                             ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool1d(_AvgPoolNd):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        for name in ("kernel_size", "stride", "padding"):  # PyTorch keeps them as 1-tuples
            setattr(self, name, FX._ntuple(getattr(self, name), 1, name, "AvgPool1d"))

    def forward(self, input):
        return FX.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad)


class _AdaptivePool(Module):
    def __init__(self, output_size, return_indices=None):
        super().__init__()
        self.output_size = output_size
        if return_indices is not None:
            self.return_indices = return_indices

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptivePool):
    def forward(self, input):
        return FX.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_AdaptivePool):
    def forward(self, input):
        return FX.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveMaxPool1d(_AdaptivePool):
    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size, return_indices)

    def forward(self, input):
        return FX.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(_AdaptivePool):
    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size, return_indices)

    def forward(self, input):
        return FX.adaptive_max_pool2d(input, self.output_size, self.return_indices)
