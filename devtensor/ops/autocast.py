"""The casts autocast makes (devtensor/autocast_mode.py holds its state): PyTorch's op lists per device
type, and cast_args, which the public functions of those ops call while autocast_mode.ACTIVE is set:

    if _AMP[0]:
        input, weight, bias = cast_args("linear", input, weight, bias)

The casts are ordinary ops (Tensor.to), so autograd carries gradients back in the arguments' own dtype
(float32 master weights) and graph capture records them."""
from __future__ import annotations

import functools
import warnings

from .. import autocast_mode as _mode
from .. import dtypes as _dt
from ..backends import get_backend
from ..autocast_mode import ACTIVE, state  # noqa: F401 - ACTIVE: the flag callers test
from ..tensor import Tensor

# PyTorch's "lower precision" lists, as far as devtensor has the ops (mv is on cuda's, not on cpu's); the
# recurrent layers by their modes' lower-cased names (nn.LSTM: on cpu's through its oneDNN layer)
_LOWER_CPU = frozenset({
    "matmul", "mm", "bmm", "addmm", "baddbmm", "addbmm", "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
    "conv_transpose2d", "conv_transpose3d", "prelu", "scaled_dot_product_attention", "lstm", "rnn_tanh",
    "rnn_relu"})
# cuda's also takes nn.GRU (cuDNN's fused layer; on cpu PyTorch runs GRU in float32, nn.RNN through cast matmuls)
_LOWER_CUDA = _LOWER_CPU | {"mv", "addmv", "addr", "einsum", "chain_matmul", "multi_dot", "gru"}

# the "float32" lists: the losses on both; cuda's also has softmax, the norms and the wide-range math
_LOSSES = frozenset({
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss", "kl_div",
    "binary_cross_entropy_with_logits", "poisson_nll_loss", "gaussian_nll_loss", "cosine_embedding_loss",
    "hinge_embedding_loss", "margin_ranking_loss", "soft_margin_loss", "triplet_margin_loss", "multi_margin_loss",
    "multilabel_margin_loss", "multilabel_soft_margin_loss", "ctc_loss"})
_FP32_CPU = _LOSSES | {"binary_cross_entropy"}
_FP32_CUDA = _LOSSES | {"softmax", "log_softmax", "layer_norm", "group_norm", "softplus", "cosine_similarity",
                        "logsumexp", "cdist", "pdist"}

LOWER = {"cpu": _LOWER_CPU, "cuda": _LOWER_CUDA}
FP32 = {"cpu": _FP32_CPU, "cuda": _FP32_CUDA}
# PyTorch refuses these inside a cuda autocast region (unsafe in float16): binary_cross_entropy_with_logits is
UNSAFE = {"cuda": frozenset({"binary_cross_entropy"}), "cpu": frozenset()}

_LOW = (_dt.float16, _dt.bfloat16)


def cast_args(name, *args):
    """args with the tensors cast as autocast wants for op `name` on their device (the first tensor's);
    unchanged outside an enabled region, for ops on neither list, and for non-floating tensors. float64
    tensors are never lowered (as PyTorch)."""
    dev = next((a._device.type for a in args if isinstance(a, Tensor)), None)
    st = state
    if dev is None or not st.enabled.get(dev):
        return args
    if name in LOWER.get(dev, ()):
        to = st.dtype[dev]
        eligible = (_dt.float32, _dt.float16, _dt.bfloat16)
    elif name in FP32.get(dev, ()):
        to, eligible = _dt.float32, _LOW
    else:
        if name in UNSAFE.get(dev, ()):
            raise RuntimeError(
                f"{name} and nn.BCELoss are unsafe to autocast: under {dev} autocast use "
                "binary_cross_entropy_with_logits / nn.BCEWithLogitsLoss, which combine the sigmoid and the loss "
                "and are safe (PyTorch refuses the same)")
        return args
    return tuple(_cast(a, to, eligible, st) if isinstance(a, Tensor) and a.dtype in eligible and a.dtype is not to
                 else a for a in args)


def _cast(t, to, eligible, st):
    # a leaf that requires grad (a weight) is cast once per region: every use shares the cast, as PyTorch's cache
    if not (st.cache_on and t._rg and t.grad_fn is None):
        return t.to(to)
    key = (id(t), to)
    hit = st.cache.get(key)
    if hit is not None and hit[0] is t and hit[1] == t._version:
        return hit[2]
    c = t.to(to)
    st.cache[key] = (t, t._version, c)
    return c


def autocast_as(name):
    """Decorator for the public functions a step calls a few times (the losses, cosine_similarity, ...):
    their tensor arguments, positional and keyword, cast as cast_args(name, ...). The hot ones (linear,
    matmul, conv2d, softmax) test ACTIVE inline instead, saving this wrapper's call."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if ACTIVE[0]:
                args = cast_args(name, *args)
                if kwargs:
                    kwargs = dict(zip(kwargs, cast_args(name, *kwargs.values())))
            return fn(*args, **kwargs)

        return wrapper

    return deco


class autocast:
    """torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None): a context manager and a
    decorator. Inside, the ops on PyTorch's lower-precision list compute in `dtype` (default float16 on
    cuda, bfloat16 on cpu), those on its float32 list in float32; the rest follow their inputs."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"autocast: expected device_type of type str, got {type(device_type).__name__}")
        self.device = _mode._device_type(device_type, "autocast")
        self.fast_dtype = _mode.DEFAULT_DTYPE[self.device] if dtype is None else _dt.as_dtype(dtype)
        self._enabled = bool(enabled)
        self._cache_enabled = cache_enabled
        if self._enabled and self.fast_dtype not in _mode._SUPPORTED[self.device]:
            names = ", ".join(d.name for d in _mode._SUPPORTED[self.device])
            warnings.warn(f"In {self.device} autocast, but the target dtype {self.fast_dtype.name} is not supported "
                          f"(supported: {names}). Disabling autocast.", UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled and self.device == "cuda" and not get_backend("cuda").is_available()[0]:
            warnings.warn("User provided device_type of 'cuda', but CUDA is not available. Disabling autocast.",
                          UserWarning, stacklevel=2)  # as PyTorch: the region then changes nothing
            self._enabled = False

    def __enter__(self):
        st = _mode.state
        d = self.device
        self._prev = (st.enabled.get(d, False), st.dtype[d], st.cache_on)
        st.enabled[d] = self._enabled
        st.dtype[d] = self.fast_dtype
        if self._cache_enabled is not None:
            st.cache_on = bool(self._cache_enabled)
        st.depth += 1
        if self._enabled:
            with _mode._lock:
                _mode.ACTIVE[0] += 1
        return self

    def __exit__(self, *exc):
        st = _mode.state
        d = self.device
        st.enabled[d], st.dtype[d], st.cache_on = self._prev
        st.depth -= 1
        if st.depth == 0:  # PyTorch drops the cast cache when the outermost region ends
            st.cache.clear()
        if self._enabled:
            with _mode._lock:
                _mode.ACTIVE[0] -= 1
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return fn(*args, **kwargs)

        return wrapper
