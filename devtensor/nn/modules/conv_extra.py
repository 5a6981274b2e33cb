"""Conv1d, ConvTranspose1d and ConvTranspose2d: PyTorch's arguments (stride, padding incl. 'same' /
'valid' for Conv1d, output_padding, dilation, groups, bias, padding_mode), weight layouts
((out, in / groups, k) for Conv1d, (in, out / groups, k...) for the transposed ones) and default
initialisation, over F.conv1d / F.conv_transpose1d / F.conv_transpose2d (nn/functional_extra.py)."""
from __future__ import annotations

from .. import functional_extra as FX
from .conv import _ConvNd

__all__ = ["Conv1d", "ConvTranspose1d", "ConvTranspose2d"]


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) or (C_in, L)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0, groups, bias,
                         padding_mode, 1, device, dtype)

    def forward(self, input):
        if self.padding_mode != "zeros":
            x = FX.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return FX.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return FX.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _ConvTransposeNd(_ConvNd):
    """ConvTranspose1d / 2d: PyTorch's signature; _n spatial dims, _conv the functional form."""

    _n = 0
    _conv = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True, output_padding,
                         groups, bias, padding_mode, self._n, device, dtype)

    def forward(self, input, output_size=None):
        op = self._output_padding(input, output_size, self._n)
        return self._conv(input, self.weight, self.bias, self.stride, self.padding, op, self.groups,
                          self.dilation)

    def _output_padding(self, input, output_size, n):
        """PyTorch's rule: the output_padding that gives output_size (within one stride of the minimum)."""
        if output_size is None:
            return self.output_padding
        output_size = list(output_size)
        if len(output_size) == input.ndim:
            output_size = output_size[2:]
        elif len(output_size) == input.ndim - 1:
            output_size = output_size[1:]
        if len(output_size) != n:
            raise ValueError(f"ConvTranspose{n}D: for {input.ndim}D input, output_size must have {n} or "
                             f"{n + 2} elements (got {len(output_size) + (input.ndim - n - len(output_size))})")
        res = []
        for d in range(n):
            size = input.shape[input.ndim - n + d]
            lo = ((size - 1) * self.stride[d] - 2 * self.padding[d] + self.dilation[d] * (self.kernel_size[d] - 1)
                  + 1)
            hi = lo + self.stride[d] - 1
            if not lo <= output_size[d] <= hi:
                raise ValueError(f"requested an output size of {output_size}, but valid sizes range from {lo} to {hi} "
                                 f"(for an input of {list(input.shape[2:])})")
            res.append(output_size[d] - lo)
        return tuple(res)


class ConvTranspose1d(_ConvTransposeNd):
    _n = 1
    _conv = staticmethod(FX.conv_transpose1d)


class ConvTranspose2d(_ConvTransposeNd):
    _n = 2
    _conv = staticmethod(FX.conv_transpose2d)
