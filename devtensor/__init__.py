"""devtensor: a device-agnostic tensor library with autograd, in PyTorch's dialect.

    import devtensor as dt
    x = dt.randn(3, 4, requires_grad=True)
    (x @ x.T).sum().backward()
"""
from __future__ import annotations

import sys as _sys

from ._version import __version__  # noqa: F401

from . import _blas_env  # noqa: F401  (first: OpenBLAS reads its settings when numpy loads it)
from . import dtypes as _dtype_mod
from .backends import _register_builtin
from .device import device, get_default_device, set_default_device, set_device_fallback
from .dtypes import (bfloat16, complex64, complex128, float16, float32, float64, get_default_dtype, int8, int16,
                    int32, int64, promote_types, result_type, set_default_dtype, uint8)
from .dtypes import bool_ as bool  # noqa: A001 - devtensor.bool, as torch.bool
from .dtypes import dtype
from .printing import get_printoptions, printoptions, set_printoptions  # noqa: F401
from .tensor import Size, Tensor, is_tensor

_register_builtin()

from .ops import FUNCTIONS as _FUNCTIONS  # noqa: E402  (declares every op; attaches Tensor methods)

globals().update(_FUNCTIONS)
from .ops.generator import Generator, default_generator  # noqa: E402,F401  (torch.Generator, torch.default_generator)

from . import autograd, backends  # noqa: E402
from .autograd import engine as _engine  # noqa: E402,F401  (attaches Tensor.backward)
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402
from .backends.meta import derive_kernels as _derive_meta  # noqa: E402
from .dispatch import OPS as _OPS  # noqa: E402
from .dispatch import finalise as _finalise  # noqa: E402
from .dispatch import set_sync_debug  # noqa: E402

_derive_meta(_OPS)
_finalise()

from . import cuda  # noqa: E402
from . import accelerator  # noqa: E402  (torch.accelerator: the device-agnostic API, mapped to cuda)
from . import fft, linalg, special  # noqa: E402  (torch.fft, torch.linalg and torch.special's namespaces)
from . import nn  # noqa: E402
from . import optim  # noqa: E402
from . import datasets, utils  # noqa: E402
from . import testing  # noqa: E402  (torch.testing.assert_close)
from . import distributions  # noqa: E402
from .serialization import load, save  # noqa: E402
from . import fit  # noqa: E402
from . import compiler  # noqa: E402
from . import onnx  # noqa: E402  (dt.onnx.export; the onnx package itself loads only when export runs)
from .compiler import compile  # noqa: E402,A004 - torch.compile's name
from . import amp, cpu  # noqa: E402  (torch.amp: autocast, GradScaler; torch.cpu)
from .amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: E402

cuda.amp = amp.cuda_amp  # torch.cuda.amp's deprecated autocast / GradScaler (cuda.py sits below amp's layer)
_sys.modules[__name__ + ".cuda.amp"] = amp.cuda_amp  # so `from devtensor.cuda.amp import GradScaler` works too
_sys.modules[__name__ + ".cpu.amp"] = amp.cpu_amp
from .determinism import (are_deterministic_algorithms_enabled,  # noqa: E402
                          is_deterministic_algorithms_warn_only_enabled, use_deterministic_algorithms)
from .backends.cuda import get_float32_matmul_precision, set_float32_matmul_precision  # noqa: E402,F401

half, double, long, short = float16, float64, int64, int16
cfloat, cdouble = complex64, complex128
int = int32  # noqa: A001 - devtensor.int, as torch.int
float = float32  # noqa: A001 - devtensor.float, as torch.float


def is_floating_point(t):
    return t.dtype.is_floating_point


def numel(t):
    return t.numel()
