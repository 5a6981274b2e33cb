"""Conv2d (stride, padding incl. 'same'/'valid', dilation, groups, bias), and _ConvNd, the set-up it
shares with Conv1d and the transposed convolutions of conv_extra.py (arguments, weight layout, PyTorch's
default initialisation, repr) as in PyTorch."""
from __future__ import annotations

import math

from ...ops.creation import empty
from .. import functional as F
from .. import functional_extra as FX
from .. import init
from ..parameter import Parameter
from .module import Module


_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, transposed, output_padding,
                 groups, bias, padding_mode, n, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError(f"in_channels must be divisible by groups (in_channels={in_channels}, groups={groups})")
        if out_channels % groups != 0:
            raise ValueError(f"out_channels must be divisible by groups (out_channels={out_channels}, "
                             f"groups={groups})")
        if padding_mode not in _MODES:
            raise ValueError(f"padding_mode must be one of {list(_MODES)}, but got padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = FX._ntuple(kernel_size, n, "kernel_size", name)
        self.stride = FX._ntuple(stride, n, "stride", name)
        self.dilation = FX._ntuple(dilation, n, "dilation", name)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = FX._ntuple(padding, n, "padding", name)
        self.transposed = transposed
        self.output_padding = FX._ntuple(output_padding, n, "output_padding", name)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        if isinstance(self.padding, str):
            pads = FX._same_pads(self.kernel_size, self.dilation) if self.padding == "same" else [(0, 0)] * n
            self._reversed_padding_repeated_twice = [v for lo_hi in reversed(pads) for v in lo_hi]
        else:
            self._reversed_padding_repeated_twice = [p for p in reversed(self.padding) for _ in range(2)]
        shape = ((in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups))
        self.weight = Parameter(empty(shape + self.kernel_size, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        n = len(self.kernel_size)
        if self.padding != (0,) * n:
            s += ", padding={padding}"
        if self.dilation != (1,) * n:
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * n:
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)


class Conv2d(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0, groups, bias,
                         padding_mode, 2, device, dtype)
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv2d: padding_mode='{padding_mode}' is not supported yet (only 'zeros')")

    def _same_padding(self):
        """(symmetric padding, or None) and the extra right/bottom pad an even kernel extent needs."""
        pads = FX._same_pads(self.kernel_size, self.dilation)
        return tuple(lo for lo, _ in pads), tuple(hi - lo for lo, hi in pads)

    def forward(self, input):
        if input.ndim not in (3, 4):
            raise RuntimeError(f"Conv2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                               f"{list(input.shape)}")
        c = input.shape[-3]
        if c != self.in_channels:
            raise RuntimeError(f"Conv2d: expected input with {self.in_channels} channels, got shape "
                               f"{list(input.shape)} ({c} channels); weight has shape {list(self.weight.shape)}")
        padding = self.padding
        if padding == "same":
            padding, extra = self._same_padding()
            if any(extra):
                # an even kernel extent: PyTorch puts the odd pixel on the right/bottom
                input = F.pad(input, (0, extra[1], 0, extra[0]))
        return F.conv2d(input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
