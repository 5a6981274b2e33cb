"""Conv2d (stride, padding incl. 'same'/'valid', dilation, groups, bias)."""
from __future__ import annotations

import math

from ...ops.creation import empty
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module


def _pair(v, name):
    return F._pair(v, name, "Conv2d")


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError(f"in_channels must be divisible by groups (in_channels={in_channels}, groups={groups})")
        if out_channels % groups != 0:
            raise ValueError(f"out_channels must be divisible by groups (out_channels={out_channels}, "
                             f"groups={groups})")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError("padding_mode must be one of 'zeros', 'reflect', 'replicate' or 'circular', "
                             f"but got padding_mode='{padding_mode}'")
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv2d: padding_mode='{padding_mode}' is not supported yet (only 'zeros')")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.dilation = _pair(dilation, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding")
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.transposed = False
        self.output_padding = (0, 0)
        self.weight = Parameter(empty((self.out_channels, self.in_channels // self.groups, *self.kernel_size),
                                      device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(self.out_channels, device=device, dtype=dtype))
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

    def _same_padding(self):
        """(symmetric padding, or None) and the extra right/bottom pad an even kernel extent needs."""
        total = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
        left = [t // 2 for t in total]
        extra = [t - 2 * lo for t, lo in zip(total, left)]
        return tuple(left), tuple(extra)

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

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
