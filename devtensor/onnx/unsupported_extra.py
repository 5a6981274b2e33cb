"""Issue 18's ops (scans, sorting, special functions, scatter, einsum, linear algebra) have no ONNX converters
yet: each with why, and what to do instead (devtensor/onnx/ops.py merges this into UNSUPPORTED)."""
from __future__ import annotations

_OUTSIDE = "compute it with devtensor before or after the exported part of the model"
_FAMILIES = {
    ("cumsum", "cumprod", "cummax", "cummin", "logcumsumexp"):
        ("a scan (cumsum & co.): no converter yet (ONNX has CumSum only)", _OUTSIDE),
    ("sort", "topk", "kthvalue", "median", "mode", "searchsorted", "histc"):
        ("sorting and order statistics: no converter yet", _OUTSIDE),
    ("erfc", "erfinv", "lgamma", "digamma", "polygamma", "hypot", "logaddexp", "logaddexp2", "fmod", "copysign",
     "nan_to_num", "xlogy"):
        ("a special function: no converter yet", "write it with exp / log / erf / where, which export"),
    ("scatter", "scatter_reduce"): ("scatter / scatter_reduce: no converter yet", "use scatter_add or x[key] = v"),
    ("einsum", "diagonal", "diag_embed"): ("einsum / diagonal: no converter yet", "use matmul, reshape and permute"),
    ("linalg_inv", "linalg_det", "linalg_slogdet", "linalg_solve", "linalg_cholesky", "linalg_qr", "linalg_svd",
     "linalg_eigh"): ("a matrix decomposition or solver: ONNX has no such operator", _OUTSIDE),
    ("fft_c2c", "fft_r2c", "fft_c2r"):
        ("an FFT: no converter yet (ONNX's DFT, opset 17, holds complex values as a trailing dimension of 2, and "
         "onnxruntime has few ops for the complex tensors devtensor.fft returns)", _OUTSIDE),
    ("real", "imag", "conj", "angle", "view_as_real", "view_as_complex", "complex"):
        ("a complex-number op: ONNX's complex types have almost no operators", _OUTSIDE),
    ("diagonal_backward",): ("a backward op: export captures the forward only (eval mode, no_grad)",
                             "export the forward; run gradients with devtensor (or onnxruntime-training)"),
}
UNSUPPORTED_EXTRA = {name: why for names, why in _FAMILIES.items() for name in names}
