"""repr(tensor) in PyTorch's style: tensor([...], device='cuda:0', grad_fn=<MulBackward>), and
PyTorch's print options (set_printoptions / get_printoptions / printoptions)."""
from __future__ import annotations

import contextlib
import math

import numpy as np

from . import dtypes as _dt

# precision, threshold, edgeitems, linewidth as in PyTorch; sci_mode None: scientific notation when
# the nonzero magnitudes span more than 1e3, or reach 1e8, or go below 1e-4 (numpy's rule is PyTorch's)
_PROFILES = {"default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
             "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
             "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80)}
PRINT_OPTS = dict(_PROFILES["default"], sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """PyTorch's torch.set_printoptions: options left None keep their value, except sci_mode, which is
    always set (None: chosen per tensor); profile ("default", "short", "full") sets the first four."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions(): profile must be one of {list(_PROFILES)}, got {profile!r}")
        PRINT_OPTS.update(_PROFILES[profile])
    for name, v in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                    ("linewidth", linewidth)):
        if v is not None:
            PRINT_OPTS[name] = v
    PRINT_OPTS["sci_mode"] = sci_mode


def get_printoptions():
    """The current options, as keyword arguments for set_printoptions()."""
    return dict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    """Set print options inside a with-block only."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


class _Formatter:
    """PyTorch's _Formatter: one width, and fixed / integer / scientific notation, for all the
    (summarised) values of a tensor."""

    def __init__(self, a):
        self.floating = a.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.max_width = True, False, 1
        if not self.floating:
            self.max_width = max([1, *(len(str(v)) for v in a.reshape(-1).tolist())])
            return
        nz = a[np.isfinite(a) & (a != 0)].astype(np.float64)
        if nz.size == 0:
            return  # only zeros and non-finite values: printed as integers ("0.", "nan"), whatever sci_mode
        p, lo, hi = PRINT_OPTS["precision"], np.abs(nz).min(), np.abs(nz).max()
        self.int_mode = bool(np.all(nz == np.ceil(nz)))
        self.sci_mode = (hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4) if PRINT_OPTS["sci_mode"] is None \
            else PRINT_OPTS["sci_mode"]
        if self.sci_mode:
            self.max_width = max(len(f"{v:.{p}e}") for v in nz.tolist())
        elif self.int_mode:
            self.max_width = max(len(f"{v:.0f}") + 1 for v in nz.tolist())
        else:
            self.max_width = max(len(f"{v:.{p}f}") for v in nz.tolist())

    def format(self, v):
        p = PRINT_OPTS["precision"]
        if not self.floating:
            s = f"{v}"
        elif self.sci_mode:
            s = f"{v:{self.max_width}.{p}e}"
        elif self.int_mode:
            s = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        else:
            s = f"{v:.{p}f}"
        return (self.max_width - len(s)) * " " + s

    def width(self):
        return self.max_width


def _summarized(a, edge):
    """The values that a summarised print shows (PyTorch's get_summarized_data)."""
    for d in range(a.ndim):
        if a.shape[d] > 2 * edge:
            a = np.concatenate([a.take(range(edge), axis=d), a.take(range(a.shape[d] - edge, a.shape[d]), axis=d)],
                               axis=d)
    return a


def _value(v, f1, f2):
    if f2 is None:
        return f1.format(v)
    re, im = f1.format(v.real), (f2.format(v.imag) + "j").lstrip()
    return re + im if im[0] in "+-" else re + "+" + im


def _vector(a, indent, summarize, f1, f2):
    element_length = f1.width() + 2 + (f2.width() + 1 if f2 is not None else 0)
    per_line = max(1, math.floor((PRINT_OPTS["linewidth"] - indent) / element_length))
    edge = PRINT_OPTS["edgeitems"]
    if summarize and not edge:
        data = ["..."]
    elif summarize and a.shape[0] > 2 * edge:
        data = [_value(v, f1, f2) for v in a[:edge].tolist()] + [" ..."] + [_value(v, f1, f2)
                                                                            for v in a[-edge:].tolist()]
    else:
        data = [_value(v, f1, f2) for v in a.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(a, indent, summarize, f1, f2):
    if a.ndim == 0:
        return _value(a.item(), f1, f2)
    if a.ndim == 1:
        return _vector(a, indent, summarize, f1, f2)
    edge = PRINT_OPTS["edgeitems"]
    if summarize and a.shape[0] > 2 * edge:
        rows = ([_nested(a[i], indent + 1, summarize, f1, f2) for i in range(edge)] + ["..."]
                + [_nested(a[i], indent + 1, summarize, f1, f2) for i in range(a.shape[0] - edge, a.shape[0])])
    else:
        rows = [_nested(a[i], indent + 1, summarize, f1, f2) for i in range(a.shape[0])]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def _body(a, indent):
    summarize = a.size > PRINT_OPTS["threshold"]
    view = (lambda x: _summarized(x, PRINT_OPTS["edgeitems"])) if summarize else (lambda x: x)
    if a.dtype.kind == "c":
        return _nested(a, indent, summarize, _Formatter(view(a.real)), _Formatter(view(a.imag)))
    return _nested(a, indent, summarize, _Formatter(view(a)), None)


def tensor_repr(t):
    if t._device.type == "meta":
        body = f"..., size={tuple(t._data.shape)}"
    else:
        a = np.asarray(t._host())
        if a.dtype.kind == "f" and a.dtype.itemsize < 4 or t.dtype is _dt.bfloat16:
            a = a.astype(np.float32)  # half precision prints through float32, as in PyTorch
        body = _body(a, len("tensor(")) if a.size else f"[], size={tuple(a.shape)}" if a.ndim != 1 else "[]"
    extras = []
    if t._device.type != "cpu":
        extras.append(f"device='{t._device}'")
    default = {_dt.get_default_dtype(), _dt.get_default_dtype().to_complex(), _dt.int64, _dt.bool_}
    if t.dtype not in default:
        extras.append(f"dtype={t.dtype!r}")
    if t._edge is not None:
        extras.append(f"grad_fn=<{t._edge[0].name()}>")
    elif t._rg:
        extras.append("requires_grad=True")
    return _add_suffixes("tensor(" + body, extras, len("tensor("))


def _add_suffixes(text, suffixes, indent):
    """PyTorch's rule: a suffix that would pass linewidth on the last line starts a new line."""
    out = [text]
    last = len(text) - text.rfind("\n") + 1
    for s in suffixes:
        if last + len(s) + 2 > PRINT_OPTS["linewidth"]:
            out.append(",\n" + " " * indent + s)
            last = indent + len(s)
        else:
            out.append(", " + s)
            last += len(s) + 2
    return "".join(out) + ")"

