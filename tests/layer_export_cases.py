"""ONNX export cases for the layers of issue 19 (nn.Conv1d ... nn.Transformer), merged into
tests/test_onnx_export.py's LAYERS / NOT_LAYERS / _HAND tables: every layer either exports (and
matches onnxruntime at two batch sizes there) or is listed with the reason it does not."""
from __future__ import annotations

import numpy as np

import devtensor as dt
from devtensor import nn
from devtensor.nn import functional as F


def _x(*shape, seed=0):
    return dt.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _perm(*shape, seed=0):  # distinct values: max pooling has no ties to break differently
    n = int(np.prod(shape))
    return dt.tensor(np.random.default_rng(seed).permutation(n).reshape(shape).astype(np.float32) / n)


def _affine(m):
    with dt.no_grad():
        m.weight.copy_(_x(*m.weight.shape, seed=4))
        if getattr(m, "bias", None) is not None:
            m.bias.copy_(_x(*m.bias.shape, seed=5))
    return m


def _inorm_tracked():
    m = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    for s in range(3):
        m(_x(2, 3, 5, 5, seed=10 + s) * 2 + 1)
    m.eval()
    return _affine(m)


def _enc(**kw):
    return nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, **kw)


class _MHA(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True, **kw)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


class _Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, batch_first=True), 2, nn.LayerNorm(8))

    def forward(self, tgt, mem):
        return self.dec(tgt, mem, tgt_mask=nn.Transformer.generate_square_subsequent_mask(tgt.shape[1]))


class _DecoderLayer(_Decoder):
    def __init__(self):
        nn.Module.__init__(self)
        self.dec = nn.TransformerDecoderLayer(8, 2, 16, batch_first=True, norm_first=True)


class _Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.t = nn.Transformer(8, 2, 1, 1, 16, batch_first=True)

    def forward(self, src, tgt):
        return self.t(src, tgt)


class _Seq(nn.Module):
    """A recurrent layer with its outputs flattened: (output, h_n[, c_n]). With packed=True the batch
    goes in packed with fixed lengths (its batch_sizes become ONNX's sequence_lens; the batch is static)."""

    def __init__(self, m, packed=False):
        super().__init__()
        self.m, self.packed = m, packed

    def forward(self, x):
        if self.packed:
            out, h = self.m(nn.utils.rnn.pack_padded_sequence(x, [5, 3, 2], batch_first=True))
            out = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]
        else:
            out, h = self.m(x)
        return (out, *h) if isinstance(h, tuple) else (out, h)


class _Bilinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.b = nn.Bilinear(3, 4, 5)

    def forward(self, x):
        return self.b(x[:, :3], x[:, 3:])


_S = lambda x: [lambda: x]  # noqa: E731

# name -> [(module factory, input factories, ONNX op expected in the graph)]
LAYERS_EXTRA = {
    "Conv1d": [(lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1), [lambda: _x(2, 3, 9)], "Conv"),
               (lambda: nn.Conv1d(4, 4, 3, padding="same", padding_mode="circular", groups=2), [lambda: _x(2, 4, 9)],
                "Gather")],
    "ConvTranspose1d": [(lambda: nn.ConvTranspose1d(3, 2, 3, stride=2, output_padding=1), [lambda: _x(2, 3, 7)],
                         "ConvTranspose")],
    "ConvTranspose2d": [(lambda: nn.ConvTranspose2d(3, 2, 4, 2, 1), [lambda: _x(2, 3, 4, 5)], "ConvTranspose"),
                        (lambda: nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1, groups=2, dilation=2),
                         [lambda: _x(2, 4, 5, 4)], "ConvTranspose")],
    "MaxPool1d": [(lambda: nn.MaxPool1d(3, 2, padding=1), [lambda: _perm(2, 3, 10)], "MaxPool")],
    "AvgPool1d": [(lambda: nn.AvgPool1d(3, 2, padding=1), [lambda: _x(2, 3, 10)], "AveragePool")],
    "AdaptiveAvgPool1d": [(lambda: nn.AdaptiveAvgPool1d(3), [lambda: _x(2, 3, 10)], "Gemm")],
    "AdaptiveAvgPool2d": [(lambda: nn.AdaptiveAvgPool2d(1), [lambda: _x(2, 3, 5, 4)], "ReduceMean"),
                          (lambda: nn.AdaptiveAvgPool2d((2, 3)), [lambda: _x(2, 3, 4, 9)], "AveragePool"),
                          (lambda: nn.AdaptiveAvgPool2d((3, 2)), [lambda: _x(2, 3, 7, 5)], "Gemm")],
    "AdaptiveMaxPool1d": [(lambda: nn.AdaptiveMaxPool1d(3), [lambda: _perm(2, 3, 10)], "ReduceMax")],
    "AdaptiveMaxPool2d": [(lambda: nn.AdaptiveMaxPool2d(2), [lambda: _perm(2, 3, 6, 4)], "MaxPool"),
                          (lambda: nn.AdaptiveMaxPool2d((3, 2)), [lambda: _perm(2, 3, 7, 5)], "ReduceMax")],
    "Upsample": [(lambda: nn.Upsample(scale_factor=2), [lambda: _x(2, 3, 4, 5)], "Gather"),
                 (lambda: nn.Upsample(size=(7, 6), mode="bilinear"), [lambda: _x(2, 3, 4, 5)], "Gemm")],
    "UpsamplingNearest2d": [(lambda: nn.UpsamplingNearest2d(scale_factor=3), [lambda: _x(2, 3, 4, 5)], "Gather")],
    "UpsamplingBilinear2d": [(lambda: nn.UpsamplingBilinear2d(size=(6, 8)), [lambda: _x(2, 3, 4, 5)], "Gemm")],
    "PixelShuffle": [(lambda: nn.PixelShuffle(2), [lambda: _x(2, 8, 3, 4)], "Transpose")],
    "PixelUnshuffle": [(lambda: nn.PixelUnshuffle(2), [lambda: _x(2, 2, 4, 6)], "Transpose")],
    "ZeroPad1d": [(lambda: nn.ZeroPad1d((1, 2)), [lambda: _x(2, 3, 5)], "Pad")],
    "ZeroPad2d": [(lambda: nn.ZeroPad2d((1, 2, 0, 3)), [lambda: _x(2, 3, 5, 4)], "Pad")],
    "ConstantPad1d": [(lambda: nn.ConstantPad1d(2, 1.5), [lambda: _x(2, 3, 5)], "Pad")],
    "ConstantPad2d": [(lambda: nn.ConstantPad2d((1, 0, 2, 1), -1.0), [lambda: _x(2, 3, 5, 4)], "Pad")],
    "ReflectionPad1d": [(lambda: nn.ReflectionPad1d(2), [lambda: _x(2, 3, 5)], "Gather")],
    "ReflectionPad2d": [(lambda: nn.ReflectionPad2d((1, 2, 2, 1)), [lambda: _x(2, 3, 5, 4)], "Gather")],
    "ReplicationPad1d": [(lambda: nn.ReplicationPad1d((3, 1)), [lambda: _x(2, 3, 5)], "Gather")],
    "ReplicationPad2d": [(lambda: nn.ReplicationPad2d(2), [lambda: _x(2, 3, 5, 4)], "Gather")],
    "CircularPad1d": [(lambda: nn.CircularPad1d(2), [lambda: _x(2, 3, 5)], "Gather")],
    "CircularPad2d": [(lambda: nn.CircularPad2d((1, 1, 2, 0)), [lambda: _x(2, 3, 5, 4)], "Gather")],
    "Unfold": [(lambda: nn.Unfold(2, padding=1, stride=2), [lambda: _x(2, 3, 6, 5)], "Conv")],
    "Fold": [(lambda: nn.Fold((5, 6), 2, stride=(1, 2)), [lambda: _x(2, 12, 12)], "ConvTranspose")],
    "GroupNorm": [(lambda: _affine(nn.GroupNorm(2, 4)), [lambda: _x(2, 4, 3, 5)], "ReduceMean")],
    "InstanceNorm1d": [(lambda: nn.InstanceNorm1d(3), [lambda: _x(2, 3, 9)], "ReduceMean")],
    "InstanceNorm2d": [(lambda: _affine(nn.InstanceNorm2d(3, affine=True)), [lambda: _x(2, 3, 5, 4)], "ReduceMean"),
                       (_inorm_tracked, [lambda: _x(2, 3, 5, 4)], "Sub")],  # the running statistics: constants
    "InstanceNorm3d": [(lambda: nn.InstanceNorm3d(2), [lambda: _x(2, 2, 3, 4, 3)], "ReduceMean")],
    "LocalResponseNorm": [(lambda: nn.LocalResponseNorm(3), [lambda: _x(2, 5, 3, 4)], "AveragePool")],
    "Dropout1d": [(lambda: nn.Sequential(nn.Conv1d(3, 3, 1), nn.Dropout1d(0.5)), [lambda: _x(2, 3, 5)], "Conv")],
    "Dropout2d": [(lambda: nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout2d(0.5)), [lambda: _x(2, 3, 5, 4)], "Conv")],
    "Dropout3d": [(lambda: nn.Sequential(nn.Linear(4, 4), nn.Dropout3d(0.5)), [lambda: _x(2, 3, 2, 3, 4)], "MatMul")],
    "AlphaDropout": [(lambda: nn.Sequential(nn.Linear(4, 4), nn.AlphaDropout(0.2)), [lambda: _x(5, 4)], "Gemm")],
    "ELU": [(lambda: nn.ELU(0.5), [lambda: _x(5, 6)], "Exp")],
    "SELU": [(lambda: nn.SELU(), [lambda: _x(5, 6)], "Exp")],
    "CELU": [(lambda: nn.CELU(2.0), [lambda: _x(5, 6)], "Exp")],
    "Softplus": [(lambda: nn.Softplus(2.0), [lambda: _x(5, 6)], "Exp")],
    "Softsign": [(lambda: nn.Softsign(), [lambda: _x(5, 6)], "Abs")],
    "Hardtanh": [(lambda: nn.Hardtanh(-0.5, 2.0), [lambda: _x(5, 6)], "Where")],
    "ReLU6": [(lambda: nn.ReLU6(), [lambda: _x(5, 6) * 4], "Where")],
    "Hardsigmoid": [(lambda: nn.Hardsigmoid(), [lambda: _x(5, 6) * 4], "Where")],
    "Hardswish": [(lambda: nn.Hardswish(), [lambda: _x(5, 6) * 4], "Where")],
    "Mish": [(lambda: nn.Mish(), [lambda: _x(5, 6)], "Tanh")],
    "PReLU": [(lambda: nn.PReLU(4, 0.1), [lambda: _x(5, 4, 3)], "Where")],
    "RReLU": [(lambda: nn.RReLU(), [lambda: _x(5, 6)], "Where")],
    "LogSigmoid": [(lambda: nn.LogSigmoid(), [lambda: _x(5, 6)], "Log")],
    "Softmin": [(lambda: nn.Softmin(dim=1), [lambda: _x(5, 6)], "Softmax")],
    "Softmax2d": [(lambda: nn.Softmax2d(), [lambda: _x(2, 3, 4, 5)], "Softmax")],
    "Threshold": [(lambda: nn.Threshold(0.1, 20.0), [lambda: _x(5, 6)], "Where")],
    "GLU": [(lambda: nn.GLU(), [lambda: _x(5, 6)], "Sigmoid")],
    "Tanhshrink": [(lambda: nn.Tanhshrink(), [lambda: _x(5, 6)], "Tanh")],
    "Softshrink": [(lambda: nn.Softshrink(0.3), [lambda: _x(5, 6)], "Where")],
    "Hardshrink": [(lambda: nn.Hardshrink(0.3), [lambda: _x(5, 6)], "Where")],
    "Bilinear": [(_Bilinear, [lambda: _x(5, 7)], "MatMul")],
    "RNNCell": [(lambda: nn.RNNCell(4, 5), [lambda: _x(3, 4)], "Tanh")],
    "LSTMCell": [(lambda: nn.LSTMCell(4, 5), [lambda: _x(3, 4)], "Sigmoid")],
    "GRUCell": [(lambda: nn.GRUCell(4, 5), [lambda: _x(3, 4)], "GRU")],
    "LSTM": [(lambda: _Seq(nn.LSTM(4, 5, 2, batch_first=True, bidirectional=True)), [lambda: _x(3, 6, 4)], "LSTM")],
    "GRU": [(lambda: _Seq(nn.GRU(4, 5, 2, batch_first=True, bidirectional=True)), [lambda: _x(3, 6, 4)], "GRU")],
    "RNN": [(lambda: _Seq(nn.RNN(4, 5, batch_first=True, nonlinearity="relu")), [lambda: _x(3, 6, 4)], "RNN")],
    "MultiheadAttention": [(_MHA, [lambda: _x(2, 5, 8)], "Softmax"),
                           (lambda: _MHA(add_bias_kv=True, add_zero_attn=True), [lambda: _x(2, 5, 8)], "Softmax")],
    "TransformerEncoderLayer": [(_enc, [lambda: _x(2, 5, 8)], "Softmax"),
                                (lambda: _enc(norm_first=True, activation="gelu"), [lambda: _x(2, 5, 8)], "Erf")],
    "TransformerEncoder": [(lambda: nn.TransformerEncoder(_enc(), 2, nn.LayerNorm(8), enable_nested_tensor=False),
                            [lambda: _x(2, 5, 8)], "Softmax")],
    "TransformerDecoderLayer": [(_DecoderLayer, [lambda: _x(2, 4, 8), lambda: _x(2, 6, 8, seed=1)], "Softmax")],
    "TransformerDecoder": [(_Decoder, [lambda: _x(2, 4, 8), lambda: _x(2, 6, 8, seed=1)], "Softmax")],
    "Transformer": [(_Transformer, [lambda: _x(2, 6, 8), lambda: _x(2, 4, 8, seed=1)], "Softmax")],
}

NOT_LAYERS_EXTRA = {
    "RNNBase": "the base class of RNN / LSTM / GRU",
    "RNNCellBase": "the base class of the cells",
    "EmbeddingBag": "its bags (offsets) are read on the host: the exported graph would freeze them",
    "ParameterList": "a container of parameters: calling it is an error, as in PyTorch",
    "ParameterDict": "a container of parameters: calling it is an error, as in PyTorch",
}

# ops without samples in the table: (fn, inputs, batch inputs, opset)
HAND_EXTRA = {
    "conv2d_backward_input": [(lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                               [_x(2, 4, 3, 5), _x(4, 3, 3, 3, seed=1)], (0,), 17)],
}

# outputs the generated op cases export: the recurrent ops' last output is the workspace their fused
# backward reads (activations, cell states), which ONNX's LSTM / GRU / RNN do not produce
WORKSPACE_OUTPUTS = {"lstm_cell": 2, "lstm_sequence": 3, "rnn_sequence": 2}
