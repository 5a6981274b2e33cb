"""Recurrent layers: RNN, LSTM, GRU (num_layers, bidirectional, batch_first, dropout between layers,
initial states in and final states out, packed sequences) and the cells RNNCell, LSTMCell, GRUCell.

Parameters, their names (weight_ih_l{k}[_reverse], weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k},
weight_hr_l{k}), shapes, gate order (LSTM i, f, g, o; GRU r, z, n) and initialisation are PyTorch's,
so a PyTorch state_dict loads and gives the same outputs.

How a layer runs: for each layer and direction ONE linear projects the whole input sequence
(x @ W_ih.T + biases), then ONE op (devtensor/ops/rnn.py: lstm_sequence / rnn_sequence) runs the
time loop with a fused cell kernel per step, and its backward op runs backpropagation through time
the same way. Packed sequences run as a padded batch in which only the active rows of each step
are updated (the op's batch_sizes), gathered back into packed rows at the end."""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ...dispatch import call
from ...ops import rnn as _R
from ...ops.autocast import ACTIVE as _AMP
from ...ops.autocast import autocast as _autocast_region
from ...ops.autocast import cast_args as _autocast
from ...ops.creation import empty, zeros
from ...ops.shape import cat, stack
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ..utils_rnn import PackedSequence, packed_to_padded, padded_to_packed
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


class RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        num_directions = 2 if bidirectional else 1
        if (not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool)):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        gate_size = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        self._all_weights = []
        real_hidden = proj_size if proj_size > 0 else hidden_size
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_input_size = input_size if layer == 0 else real_hidden * num_directions
                w_ih = Parameter(empty((gate_size, layer_input_size), device=device, dtype=dtype))
                w_hh = Parameter(empty((gate_size, real_hidden), device=device, dtype=dtype))
                b_ih = Parameter(empty(gate_size, device=device, dtype=dtype))
                b_hh = Parameter(empty(gate_size, device=device, dtype=dtype))
                if proj_size == 0:
                    layer_params = (w_ih, w_hh, b_ih, b_hh) if bias else (w_ih, w_hh)
                else:
                    w_hr = Parameter(empty((proj_size, hidden_size), device=device, dtype=dtype))
                    layer_params = (w_ih, w_hh, b_ih, b_hh, w_hr) if bias else (w_ih, w_hh, w_hr)
                suffix = "_reverse" if direction == 1 else ""
                names = ["weight_ih_l{}{}", "weight_hh_l{}{}"]
                if bias:
                    names += ["bias_ih_l{}{}", "bias_hh_l{}{}"]
                if proj_size > 0:
                    names += ["weight_hr_l{}{}"]
                names = [x.format(layer, suffix) for x in names]
                for name, param in zip(names, layer_params):
                    setattr(self, name, param)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self):
        """PyTorch compacts the weights for cuDNN here; devtensor's ops take them as they are."""

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        return [[getattr(self, w) for w in weights] for weights in self._all_weights]

    def extra_repr(self):
        s = "{input_size}, {hidden_size}"
        if self.proj_size != 0:
            s += ", proj_size={proj_size}"
        if self.num_layers != 1:
            s += ", num_layers={num_layers}"
        if self.bias is not True:
            s += ", bias={bias}"
        if self.batch_first is not False:
            s += ", batch_first={batch_first}"
        if self.dropout != 0:
            s += ", dropout={dropout}"
        if self.bidirectional is not False:
            s += ", bidirectional={bidirectional}"
        return s.format(**self.__dict__)

    # ---- argument handling (PyTorch's messages) -----------------------------------------------------
    def _name(self):
        return {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(self.mode, self.mode)

    def _prepare(self, input, hx):
        """-> (x (T, B, F) padded, batch_sizes or None, sorted/unsorted indices, unbatched, hx list)."""
        if isinstance(input, PackedSequence):
            data, batch_sizes, sorted_indices, unsorted_indices = input
            bs = tuple(int(v) for v in np.asarray(batch_sizes.cpu()._data))
            x = packed_to_padded(data, bs)
            unbatched = False
            if hx is not None and sorted_indices is not None:
                hx = tuple(h.index_select(1, sorted_indices) for h in hx) if isinstance(hx, tuple) else \
                    hx.index_select(1, sorted_indices)
            return x, bs, sorted_indices, unsorted_indices, unbatched, hx
        if not isinstance(input, Tensor):
            raise TypeError(f"{self._name()}: input must be a Tensor or a PackedSequence, not {type(input).__name__}")
        if input.dim() not in (2, 3):
            raise ValueError(f"{self._name()}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        unbatched = input.dim() == 2
        hs = hx if isinstance(hx, tuple) else ((hx,) if hx is not None else ())
        for h in hs:
            if unbatched and h.dim() != 2:
                raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {h.dim()}-D tensor")
            if not unbatched and h.dim() != 3:
                raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {h.dim()}-D tensor")
        if unbatched:
            x = input.unsqueeze(1)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(1)
        else:
            x = input.transpose(0, 1) if self.batch_first else input
        return x, None, None, None, unbatched, hx

    def _check_hidden(self, h, expected, what="hidden"):
        if tuple(h.shape) != tuple(expected):
            raise RuntimeError(f"Expected {what} size {tuple(expected)}, got {list(h.shape)}")

    def _run(self, x, batch_sizes, h0s, c0s):
        """The layers over padded x (T, B, F) -> (y (T, B, D*H'), [h_T], [c_T])."""
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {x.shape[-1]}")
        D = 2 if self.bidirectional else 1
        hs, cs = [], []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                idx = layer * D + d
                names = self._all_weights[idx]
                params = [getattr(self, n) for n in names]
                w_ih, w_hh = params[0], params[1]
                b_ih, b_hh = (params[2], params[3]) if self.bias else (None, None)
                w_hr = params[-1] if self.proj_size > 0 else None
                y, hT, cT = self._direction(layer_in, w_ih, w_hh, b_ih, b_hh, w_hr, h0s[idx],
                                            c0s[idx] if c0s is not None else None, d == 1, batch_sizes)
                outs.append(y)
                hs.append(hT)
                if cT is not None:
                    cs.append(cT)
            layer_in = outs[0] if D == 1 else cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, True)
        return layer_in, hs, cs

    def _direction(self, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, reverse, batch_sizes):
        if _AMP[0]:  # inside autocast the layer is one op, as PyTorch's fused RNN: cast once, then no inner casts
            name = self.mode.lower()
            x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0 = _autocast(name, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0)
            with _autocast_region(x.device.type, enabled=False):
                return self._direction_(x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, reverse, batch_sizes)
        return self._direction_(x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, reverse, batch_sizes)

    def _direction_(self, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, reverse, batch_sizes):
        mode = self.mode
        attrs = {"reverse": reverse, "batch_sizes": batch_sizes}
        T, B = x.shape[0], x.shape[1]
        # the whole sequence's input projection as ONE 2-D GEMM (numpy runs a 3-D one as a slower loop)
        x2 = x.reshape(T * B, x.shape[2])
        if mode == "GRU":
            xw = F.linear(x2, w_ih, b_ih).reshape(T, B, w_ih.shape[0])
            y, hT, _ = call(_R.rnn_sequence, (xw, w_hh, b_hh, h0), {"mode": mode, **attrs})
            return y, hT, None
        bias = None if b_ih is None else b_ih + b_hh
        xw = F.linear(x2, w_ih, bias).reshape(T, B, w_ih.shape[0])
        if mode == "LSTM":
            if w_hr is not None:
                return _lstm_projected(xw, w_hh, w_hr, h0, c0, reverse, batch_sizes)
            y, hT, cT, _ = call(_R.lstm_sequence, (xw, w_hh, h0, c0), attrs)
            return y, hT, cT
        y, hT, _ = call(_R.rnn_sequence, (xw, w_hh, None, h0), {"mode": mode, **attrs})
        return y, hT, None

    def _forward(self, input, hx):
        is_lstm = self.mode == "LSTM"
        x, bs, sorted_idx, unsorted_idx, unbatched, hx = self._prepare(input, hx)
        T, B = x.shape[0], x.shape[1]
        D = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        if hx is None:
            h0 = zeros((self.num_layers * D, B, real_hidden), dtype=x.dtype, device=x.device)
            c0 = zeros((self.num_layers * D, B, self.hidden_size), dtype=x.dtype, device=x.device) if is_lstm \
                else None
        elif is_lstm:
            if not isinstance(hx, tuple) or len(hx) != 2:
                raise RuntimeError("LSTM: hx must be a tuple (h_0, c_0)")
            h0, c0 = hx
            self._check_hidden(h0, (self.num_layers * D, B, real_hidden))
            self._check_hidden(c0, (self.num_layers * D, B, self.hidden_size), "cell")
        else:
            if isinstance(hx, tuple):
                raise RuntimeError(f"{self._name()}: hx must be a Tensor, not a tuple")
            h0, c0 = hx, None
            self._check_hidden(h0, (self.num_layers * D, B, real_hidden))
        if T == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        for t in (h0, c0):
            if t is not None and (t.dtype is not x.dtype or t.device != x.device):
                raise RuntimeError(f"Input and hidden tensors are not the same dtype/device, found input tensor "
                                   f"{x.dtype}/{x.device} and hidden tensor {t.dtype}/{t.device}")
        h0s = h0.unbind(0)
        c0s = c0.unbind(0) if c0 is not None else None
        y, hs, cs = self._run(x, bs, h0s, c0s)
        h_n = stack(hs, 0)
        c_n = stack(cs, 0) if is_lstm else None
        if isinstance(input, PackedSequence):
            out = PackedSequence(padded_to_packed(y, bs), input.batch_sizes, sorted_idx, unsorted_idx)
            if unsorted_idx is not None:
                h_n = h_n.index_select(1, unsorted_idx)
                c_n = c_n.index_select(1, unsorted_idx) if c_n is not None else None
        else:
            out = y.squeeze(1) if unbatched else (y.transpose(0, 1) if self.batch_first else y)
            if unbatched:
                h_n = h_n.squeeze(1)
                c_n = c_n.squeeze(1) if c_n is not None else None
        return out, ((h_n, c_n) if is_lstm else h_n)

    def forward(self, input, hx=None):
        return self._forward(input, hx)


def _lstm_projected(xw, w_hh, w_hr, h0, c0, reverse, batch_sizes):
    """LSTM with proj_size > 0 (h = (o * tanh(c)) @ W_hr.T): step by step through the fused cell op."""
    T, B = xw.shape[0], xw.shape[1]
    steps = range(T - 1, -1, -1) if reverse else range(T)
    h, c = h0, c0
    ys = [None] * T
    w_t = w_hh.t()
    for t in steps:
        n = B if batch_sizes is None else batch_sizes[t]
        hp = h if n == B else h[:n]
        cp = c if n == B else c[:n]
        hh, cn, _ = call(_R.lstm_cell, (xw[t][:n] if n < B else xw[t], hp @ w_t, cp), {})
        hn = F.linear(hh, w_hr)
        if n < B:
            ys[t] = cat([hn, hn.new_zeros((B - n, hn.shape[1]))], 0)
            h, c = cat([hn, h[n:]], 0), cat([cn, c[n:]], 0)
        else:
            ys[t], h, c = hn, hn, cn
    return stack(ys, 0), h, c


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih.T + b_ih + h_{t-1} W_hh.T + b_hh) (or relu)."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            self_nl = args[3]
            args = args[:3] + args[4:]
        else:
            self_nl = kwargs.pop("nonlinearity", "tanh")
        if self_nl == "tanh":
            mode = "RNN_TANH"
        elif self_nl == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{self_nl}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, *args, **kwargs)
        self.nonlinearity = self_nl


class LSTM(RNNBase):
    """forward(input, (h_0, c_0)=None) -> output, (h_n, c_n)."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """forward(input, h_0=None) -> output, h_n."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


# ---- cells -----------------------------------------------------------------------------------------
class RNNCellBase(Module):
    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = Parameter(empty((num_chunks * hidden_size, input_size), device=device, dtype=dtype))
        self.weight_hh = Parameter(empty((num_chunks * hidden_size, hidden_size), device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self):
        s = "{input_size}, {hidden_size}"
        if "bias" in self.__dict__ and self.bias is not True:
            s += ", bias={bias}"
        if "nonlinearity" in self.__dict__ and self.nonlinearity != "tanh":
            s += ", nonlinearity={nonlinearity}"
        return s.format(**self.__dict__)

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _input(self, input, hx, name):
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, not {type(input).__name__}")
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} expected {self.input_size}")
        hs = hx if isinstance(hx, tuple) else ((hx,) if hx is not None else ())
        for h in hs:
            if h.dim() != input.dim():
                raise RuntimeError(f"{name}: Expected hidden to be {input.dim()}D when input is {input.dim()}D, "
                                   f"got {h.dim()}D instead")
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
            if hx is not None:
                hx = tuple(h.unsqueeze(0) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(0)
        for h in (hx if isinstance(hx, tuple) else ((hx,) if hx is not None else ())):
            if tuple(h.shape) != (input.shape[0], self.hidden_size):
                raise RuntimeError(f"hidden has inconsistent size: got {list(h.shape)}, expected "
                                   f"{[input.shape[0], self.hidden_size]}")
        return input, hx, batched

    def _zeros(self, input):
        return zeros((input.shape[0], self.hidden_size), dtype=input.dtype, device=input.device)


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        input, hx, batched = self._input(input, hx, "RNNCell")
        if hx is None:
            hx = self._zeros(input)
        v = F.linear(input, self.weight_ih, self.bias_ih) + F.linear(hx, self.weight_hh, self.bias_hh)
        h = F.relu(v) if self.nonlinearity == "relu" else F.tanh(v)
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step: forward(input, (h, c)=None) -> (h', c'), the cell as one fused op (lstm_cell)."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        input, hx, batched = self._input(input, hx, "LSTMCell")
        if hx is None:
            z = self._zeros(input)
            hx = (z, z)
        h, c = hx
        gx = F.linear(input, self.weight_ih, self.bias_ih)
        gh = F.linear(h, self.weight_hh, self.bias_hh)
        h2, c2, _ = call(_R.lstm_cell, (gx, gh, c), {})
        return (h2, c2) if batched else (h2.squeeze(0), c2.squeeze(0))


class GRUCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        input, hx, batched = self._input(input, hx, "GRUCell")
        if hx is None:
            hx = self._zeros(input)
        y, h, _ = call(_R.rnn_sequence, (F.linear(input, self.weight_ih, self.bias_ih).unsqueeze(0), self.weight_hh,
                                         self.bias_hh, hx), {"mode": "GRU", "reverse": False, "batch_sizes": None})
        return h if batched else h.squeeze(0)
