"""The subprocess half of tests/test_fuzz_kernels.py: runs fuzz cases with devtensor or with PyTorch.

A case is a JSON object (plain data, so a failing one prints and replays exactly):

    {"op": "conv2d", "valid": false, "input": {"shape": [1, 2, 5, 5], "dtype": "float32",
     "layout": "T", "seed": 3}, "weight": {...}, "bias": null, "stride": 1, "padding": -1, ...}

Tensor arguments are specs: {"shape", "dtype", "layout", "seed"} (values drawn from the seed) or
{"shape", "values", "dtype", "layout"} (exact row-major values, for indices); "grad": true makes the
built tensor a leaf that requires grad. Layouts: "contig", "offset" (a view into a longer storage at
offset 3), "T" (the last two dims transposed: non-contiguous), "step" (every other element of a
longer last dim, at offset 1), "expand" (dim 0 broadcast from size 1: stride 0).

The test runs TWO long-lived workers, `--serve devtensor` and `--serve torch`: a crash in one
library's half (PyTorch has its own, e.g. max_pool2d backward with ceil_mode and dilation) never
passes for the other's. Each answers one JSON line per case (`run_side`); the test judges the pair
with `judge`:

* devtensor raises: the exception must be a ValueError, TypeError, RuntimeError, IndexError or
  NotImplementedError (numba's own errors excluded) whose first message line names the op
  (`NAMES`) and carries no interpreter/numba internals (`INTERNALS`) - else "bad_error";
* PyTorch raises and devtensor returns a value: "no_error";
* PyTorch returns and devtensor raises (a proper error): a failure ("spurious_error") only for
  cases drawn as clearly valid ("valid": true);
* both return: same shapes, same kind of dtype (bool/int/float), allclose values, for the outputs
  and the gradients of inputs that require grad - else "mismatch".

Run modes:
    python tests/fuzz_worker.py --serve devtensor|torch   cases (one JSON per line) on stdin, one JSON
                                                          answer per line on the ORIGINAL stdout (stray
                                                          prints go to stderr); faulthandler on
    python tests/fuzz_worker.py '<case json>'             run one case, both halves, in this process and
                                                          print the verdict (a crash shows directly);
                                                          --devtensor-only / --torch-only: one half

DEVTENSOR_FUZZ_DEVICE=cuda runs the devtensor half on that device (PyTorch stays on cpu).
"""
from __future__ import annotations

import faulthandler
import json
import os
import re
import sys
import time
import traceback

import numpy as np

ALLOWED = (ValueError, TypeError, RuntimeError, IndexError, NotImplementedError)

# text that betrays an error escaping from inside the implementation instead of a checked argument
INTERNALS = ("nopython", "numba", "During:", "No implementation of function", "Traceback",
             "list index out of range", "tuple index out of range", "division by zero",
             "integer division or modulo", "object has no attribute", "object is not iterable",
             "object is not subscriptable", "unsupported operand type", "cannot import name",
             "not supported between instances", "takes no arguments", "positional argument",
             "index is out of bounds")  # the last: numba's own bounds check (NUMBA_BOUNDSCHECK=1)

# the names an op's error messages may use (the public function; optimizers: the class)
NAMES = {
    "conv2d": ("conv2d",), "max_pool2d": ("max_pool2d",), "avg_pool2d": ("avg_pool2d",),
    "softmax": ("softmax",), "log_softmax": ("log_softmax",),
    "cross_entropy": ("cross_entropy",), "nll_loss": ("nll_loss",),
    "gather": ("gather",), "scatter_add": ("scatter_add",), "index_select": ("index_select",),
    "getitem": ("index", "__getitem__"), "setitem": ("index", "index_put", "__setitem__"),
    "narrow": ("narrow",), "matmul": ("matmul",), "linear": ("linear",), "relu": ("relu",),
    "sum": ("sum",), "mean": ("mean",), "embedding": ("embedding",), "backward": ("backward",),
    "Adam": ("Adam", "load_state_dict", "adam_step_"), "AdamW": ("AdamW", "load_state_dict", "adam_step_"),
    "RMSprop": ("RMSprop", "load_state_dict", "rmsprop_step_"), "SGD": ("SGD", "load_state_dict", "sgd_step_"),
}


def op_names(case):
    op = case["op"]
    return NAMES[case["opt"]] if op == "optim" else NAMES[op]


class NoReference(Exception):
    """PyTorch's half has no trustworthy answer for this case (its own bug): judge devtensor alone."""


# ---- building inputs ----------------------------------------------------------------------------------

def _values(spec, shape):
    dtype = np.dtype(spec["dtype"] if spec["dtype"] != "bool" else np.bool_)
    if "values" in spec:
        return np.array(spec["values"], dtype=dtype).reshape(shape)
    rng = np.random.default_rng(spec.get("seed", 0))
    if dtype.kind == "f":
        a = rng.standard_normal(shape) * spec.get("scale", 1.0)
        if spec.get("positive"):
            a = np.abs(a) + 0.5
    elif dtype.kind == "b":
        a = rng.random(shape) < 0.5
    else:
        lo, hi = spec.get("range", (-3, 4))
        a = rng.integers(lo, hi, shape)
    return np.asarray(a).astype(dtype)


class Lib:
    """One library (devtensor or torch) behind the same small interface."""

    def __init__(self, name):
        self.name = name
        if name == "torch":
            import torch

            self.lib, self.F, self.optim, self.device = torch, torch.nn.functional, torch.optim, "cpu"
        else:
            import devtensor
            import devtensor.nn.functional as F

            self.lib, self.F, self.optim = devtensor, F, devtensor.optim
            self.device = os.environ.get("DEVTENSOR_FUZZ_DEVICE", "cpu")
        self.phase = "setup"

    def dtype(self, name):
        return None if name is None else getattr(self.lib, name)

    def _tensor(self, a):
        if self.name == "torch":
            return self.lib.tensor(a)
        return self.lib.tensor(a, device=self.device)

    def t(self, spec):
        """A spec -> a tensor with the spec's layout; anything else passes through."""
        if not isinstance(spec, dict) or "dtype" not in spec:
            return spec
        shape = tuple(spec["shape"]) if "shape" in spec else np.shape(spec["values"])
        layout = spec.get("layout", "contig")
        if layout == "T" and len(shape) < 2 or layout in ("step", "expand") and (len(shape) < 1 or 0 in shape[:1]):
            layout = "contig"
        if layout == "expand" and "values" in spec:
            layout = "contig"
        if layout == "expand":
            a = _values(spec, (1,) + shape[1:])
            t = self._tensor(a).expand(*shape)
        else:
            a = _values(spec, shape)
            if layout == "offset":
                pad = _values({"dtype": spec["dtype"], "seed": 7}, (5,))
                flat = np.concatenate([pad[:3], a.reshape(-1), pad[3:]])
                t = self._tensor(flat)[3:3 + a.size].reshape(shape)
            elif layout == "T":
                t = self._tensor(np.ascontiguousarray(np.swapaxes(a, -1, -2))).transpose(-1, -2)
            elif layout == "step":
                b = np.zeros(shape[:-1] + (2 * shape[-1] + 1,), a.dtype)
                b[..., 1::2] = a
                t = self._tensor(b)[..., 1::2]
            else:
                t = self._tensor(a)
        if spec.get("grad"):
            t = t.requires_grad_()
        return t

    def np(self, t):
        if t is None:
            return None
        t = t.detach()
        if self.name != "torch" and t.device.type != "cpu":
            t = t.to("cpu")
        return np.array(t.numpy())

    def finish(self, case, out, inputs):
        """{"out": ...} plus, when an input requires grad, a backward pass and "grad:<name>" entries."""
        res = {}
        outs = out if isinstance(out, tuple) else (out,)
        for i, o in enumerate(outs):
            res["out" if i == 0 else f"out{i}"] = self.np(o)
        y = outs[0]
        wants = {k: v for k, v in inputs.items() if v is not None and getattr(v, "requires_grad", False)}
        if wants and y.requires_grad:
            self.phase = "backward"
            g = self.t({"shape": list(y.shape), "dtype": str(y.dtype).split(".")[-1], "seed": case.get("seed", 0) + 1})
            y.backward(g)
            for k, v in wants.items():
                res["grad:" + k] = self.np(v.grad) if v.grad is not None else "none"
        return res


# ---- the ops: each runs one case with one library, the same code for both ------------------------------

def r_conv2d(L, c):
    x, w, b = L.t(c["input"]), L.t(c["weight"]), L.t(c.get("bias"))
    L.phase = "forward"
    out = L.F.conv2d(x, w, b, stride=c.get("stride", 1), padding=c.get("padding", 0),
                     dilation=c.get("dilation", 1), groups=c.get("groups", 1))
    return L.finish(c, out, {"input": x, "weight": w, "bias": b})


def r_max_pool2d(L, c):
    x = L.t(c["input"])
    L.phase = "forward"
    args = (x, c["kernel_size"])
    kw = dict(stride=c.get("stride"), padding=c.get("padding", 0), dilation=c.get("dilation", 1),
              ceil_mode=c.get("ceil_mode", False))
    if L.name != "torch" or not x.requires_grad:
        return L.finish(c, L.F.max_pool2d(*args, **kw, return_indices=c.get("return_indices", False)), {"input": x})
    # PyTorch's own max_pool2d backward corrupts the heap with ceil_mode + padding + dilation (torch 2.13:
    # "double free or corruption", wrong gradients): the reference gradient is scattered from the indices
    with L.lib.no_grad():
        y, idx = L.F.max_pool2d(*args, **kw, return_indices=True)
    res = {"out": L.np(y), **({"out1": L.np(idx)} if c.get("return_indices") else {})}
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= x.shape[-2] * x.shape[-1]):
        raise NoReference("torch's max_pool2d gave indices outside the input (a window lies entirely in the padding)")
    L.phase = "backward"
    g = L.t({"shape": list(y.shape), "dtype": str(y.dtype).split(".")[-1], "seed": c.get("seed", 0) + 1})
    planes = max(1, int(np.prod(x.shape[:-2])))
    gx = L.lib.zeros(planes, x.shape[-2] * x.shape[-1], dtype=x.dtype)
    gx.scatter_add_(1, idx.reshape(planes, -1), g.reshape(planes, -1))
    res["grad:input"] = L.np(gx.reshape(x.shape))
    return res


def r_avg_pool2d(L, c):
    x = L.t(c["input"])
    L.phase = "forward"
    out = L.F.avg_pool2d(x, c["kernel_size"], stride=c.get("stride"), padding=c.get("padding", 0),
                         ceil_mode=c.get("ceil_mode", False), count_include_pad=c.get("count_include_pad", True),
                         divisor_override=c.get("divisor_override"))
    return L.finish(c, out, {"input": x})


def _softmax(fn):
    def run(L, c):
        x = L.t(c["input"])
        L.phase = "forward"
        out = getattr(L.F, fn)(x, c.get("dim"), dtype=L.dtype(c.get("dtype")))
        return L.finish(c, out, {"input": x})
    return run


def r_cross_entropy(L, c):
    x, t, w = L.t(c["input"]), L.t(c["target"]), L.t(c.get("weight"))
    L.phase = "forward"
    out = L.F.cross_entropy(x, t, weight=w, ignore_index=c.get("ignore_index", -100),
                            reduction=c.get("reduction", "mean"), label_smoothing=c.get("label_smoothing", 0.0))
    return L.finish(c, out, {"input": x})


def r_nll_loss(L, c):
    x, t, w = L.t(c["input"]), L.t(c["target"]), L.t(c.get("weight"))
    L.phase = "forward"
    out = L.F.nll_loss(x, t, weight=w, ignore_index=c.get("ignore_index", -100), reduction=c.get("reduction", "mean"))
    return L.finish(c, out, {"input": x})


def r_gather(L, c):
    x, i = L.t(c["input"]), L.t(c["index"])
    L.phase = "forward"
    return L.finish(c, L.lib.gather(x, c["dim"], i), {"input": x})


def r_scatter_add(L, c):
    x, i, s = L.t(c["input"]), L.t(c["index"]), L.t(c["src"])
    L.phase = "forward"
    return L.finish(c, L.lib.scatter_add(x, c["dim"], i, s), {"input": x, "src": s})


def r_index_select(L, c):
    x, i = L.t(c["input"]), L.t(c["index"])
    L.phase = "forward"
    return L.finish(c, L.lib.index_select(x, c["dim"], i), {"input": x})


def _key(L, key):
    out = []
    for k in key:
        if k is None:
            out.append(None)
        elif k == "...":
            out.append(Ellipsis)
        elif isinstance(k, dict) and "slice" in k:
            out.append(slice(*k["slice"]))
        elif isinstance(k, dict) and "list" in k:
            out.append(list(k["list"]))
        else:
            out.append(L.t(k))
    return tuple(out)


def r_getitem(L, c):
    x = L.t(c["input"])
    key = _key(L, c["key"])
    L.phase = "forward"
    return L.finish(c, x[key], {"input": x})


def r_setitem(L, c):
    x = L.t(c["input"])
    key, v = _key(L, c["key"]), L.t(c["value"])
    L.phase = "forward"
    x[key] = v
    return {"out": L.np(x)}


def r_narrow(L, c):
    x = L.t(c["input"])
    L.phase = "forward"
    return L.finish(c, x.narrow(c["dim"], c["start"], c["length"]), {"input": x})


def r_matmul(L, c):
    a, b = L.t(c["input"]), L.t(c["other"])
    L.phase = "forward"
    return L.finish(c, L.lib.matmul(a, b), {"input": a, "other": b})


def r_linear(L, c):
    x, w, b = L.t(c["input"]), L.t(c["weight"]), L.t(c.get("bias"))
    L.phase = "forward"
    return L.finish(c, L.F.linear(x, w, b), {"input": x, "weight": w, "bias": b})


def r_relu(L, c):
    x = L.t(c["input"])
    L.phase = "forward"
    return L.finish(c, L.F.relu(x), {"input": x})


def _reduction(fn):
    def run(L, c):
        x = L.t(c["input"])
        dim = c.get("dim")
        kw = {"dtype": L.dtype(c["dtype"])} if c.get("dtype") else {}
        L.phase = "forward"
        if dim is None:
            out = getattr(L.lib, fn)(x, **kw)
        else:
            out = getattr(L.lib, fn)(x, tuple(dim) if isinstance(dim, list) else dim, c.get("keepdim", False), **kw)
        return L.finish(c, out, {"input": x})
    return run


def r_embedding(L, c):
    i, w = L.t(c["input"]), L.t(c["weight"])
    L.phase = "forward"
    return L.finish(c, L.F.embedding(i, w, padding_idx=c.get("padding_idx")), {"weight": w})


def r_backward(L, c):
    x = L.t(c["input"])
    L.phase = "forward"
    y = x * 2
    g = c.get("gradient")
    g = L.t(g) if isinstance(g, dict) else g
    L.phase = "backward"
    y.backward(g)
    return {"out": L.np(y), "grad:input": L.np(x.grad) if x.grad is not None else "none"}


def r_optim(L, c):
    """Build the optimizer, load a (possibly ill-shaped) state through load_state_dict, step."""
    p = L.t(c["param"]).detach().requires_grad_()
    g = L.t(c["grad"])
    (p * g).sum().backward()  # p.grad == g
    hp = dict(c.get("hp", {}))
    if L.name == "torch":
        hp["foreach"] = False  # torch's single-tensor code: the reference the fused kernels follow
    if "betas" in hp:
        hp["betas"] = tuple(hp["betas"])
    L.phase = "constructor"
    opt = getattr(L.optim, c["opt"])([p], **hp)
    if c.get("state") is not None:
        sd = opt.state_dict()
        st = {}
        for k, v in c["state"].items():
            if k == "step":
                st[k] = L.lib.tensor(float(v)) if L.name == "torch" else v
            else:
                st[k] = L.t(v)
        sd["state"] = {0: st}
        L.phase = "load_state_dict"
        opt.load_state_dict(sd)
    L.phase = "step"
    for _ in range(c.get("steps", 1)):
        opt.step()
    return {"out": L.np(p)}


RUNNERS = {
    "conv2d": r_conv2d, "max_pool2d": r_max_pool2d, "avg_pool2d": r_avg_pool2d,
    "softmax": _softmax("softmax"), "log_softmax": _softmax("log_softmax"),
    "cross_entropy": r_cross_entropy, "nll_loss": r_nll_loss, "gather": r_gather, "scatter_add": r_scatter_add,
    "index_select": r_index_select, "getitem": r_getitem, "setitem": r_setitem, "narrow": r_narrow,
    "matmul": r_matmul, "linear": r_linear, "relu": r_relu, "sum": _reduction("sum"), "mean": _reduction("mean"),
    "embedding": r_embedding, "backward": r_backward, "optim": r_optim,
}


# ---- judging ------------------------------------------------------------------------------------------

def _show_exc(e):
    first = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__module__}.{type(e).__qualname__}: {first[:400]}"


def error_problem(e, names):
    """Why an exception devtensor raised is not an acceptable error for the op (None if it is)."""
    cls = type(e)
    if not isinstance(e, ALLOWED) or cls.__module__.startswith("numba"):
        return (f"raised {cls.__module__}.{cls.__qualname__}; expected one of ValueError, TypeError, RuntimeError, "
                "IndexError, NotImplementedError")
    first = str(e).splitlines()[0] if str(e) else ""
    if not any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", first) for n in names):
        return f"the message does not name the op (one of {list(names)})"
    bad = [m for m in INTERNALS if m in str(e)]
    if bad:
        return f"the message leaks implementation internals ({bad[0]!r})"
    return None


def _encode(a):
    if isinstance(a, str):
        return a
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.reshape(-1).tolist()}


def _decode(d):
    if isinstance(d, str):
        return d
    return np.array(d["data"], dtype=d["dtype"]).reshape(d["shape"])


def run_side(libname, case):
    """Run a case with one library: {"returned": {name: array}} or {"raised": ..., "phase": ...} (JSON-able)."""
    import warnings

    L = lib(libname)
    L.phase = "setup"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = RUNNERS[case["op"]](L, case)
        return {"returned": {k: _encode(v) for k, v in res.items()}}
    except NoReference as e:
        return {"no_reference": str(e)}
    except BaseException as e:  # noqa: BLE001 - everything short of a signal is a verdict
        if isinstance(e, KeyboardInterrupt):
            raise
        out = {"raised": _show_exc(e), "phase": L.phase}
        if libname == "devtensor":
            out["problem"] = error_problem(e, op_names(case))
            if out["problem"]:
                out["traceback"] = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-6:])[-3000:]
        return out


def _kind(a):
    return "bool" if a.dtype == np.bool_ else "float" if a.dtype.kind in "fc" else "int"


def _case_rtol(case):
    """The loosest tolerance any dtype named in the case calls for (a float32 `dtype=` argument or input
    rounds a float64 computation too)."""
    names = set(re.findall(r'"(float16|bfloat16|float32)"', json.dumps(case)))
    return 2e-2 if names & {"float16", "bfloat16"} else 1e-4 if names else 1e-9


def _compare(key, got, want, floor=1e-9):
    if isinstance(want, str) or isinstance(got, str):
        return None if got == want else f"{key}: devtensor {got if isinstance(got, str) else 'a tensor'}, " \
                                           f"torch {want if isinstance(want, str) else 'a tensor'}"
    if got.shape != want.shape:
        return f"{key}: shape {list(got.shape)}, torch {list(want.shape)}"
    if _kind(got) != _kind(want):
        return f"{key}: dtype {got.dtype}, torch {want.dtype}"
    if _kind(want) != "float":
        if not np.array_equal(got, want):
            idx = tuple(np.argwhere(got != want)[:3].T)
            return f"{key}: values differ at {np.array(idx).T.tolist()}: {got[idx].tolist()} vs torch {want[idx].tolist()}"
        return None
    g, w = got.astype(np.float64), want.astype(np.float64)
    lowp = max(np.finfo(got.dtype).resolution, np.finfo(want.dtype).resolution)
    rtol = max(floor, 2e-2 if lowp >= 1e-3 else 1e-4 if lowp >= 1e-6 else 1e-9)
    scale = max(1.0, float(np.max(np.abs(np.where(np.isfinite(w), w, 0)))) if w.size else 1.0)
    close = np.isclose(g, w, rtol=rtol, atol=rtol * scale, equal_nan=True)
    if not close.all():
        bad = np.argwhere(~close)[:3]
        idx = tuple(bad.T)
        return (f"{key}: values differ (rtol {rtol}) at {bad.tolist()}: devtensor {g[idx].tolist()} "
                f"vs torch {w[idx].tolist()}")
    return None


def judge(case, dt_side, torch_side):
    """The verdict on one case from the two sides' results (torch_side None: no reference available):
    {"status": ok|bad_error|no_error|spurious_error|mismatch, "detail", "devtensor", "torch", ...}."""
    if torch_side is not None and "no_reference" in torch_side:
        torch_side = None
    ref = "no reference" if torch_side is None else torch_side.get("raised", "returned")
    verdict = {"status": "ok", "devtensor": dt_side.get("raised", "returned"), "torch": ref}
    phase = dt_side.get("phase")
    if "raised" in dt_side:
        if dt_side.get("problem"):
            return {**verdict, "status": "bad_error", "detail": f"devtensor {dt_side['problem']} (during {phase})",
                    "traceback": dt_side.get("traceback")}
        if torch_side is not None and "returned" in torch_side and case.get("valid"):
            return {**verdict, "status": "spurious_error",
                    "detail": f"devtensor raised (during {phase}) on a valid case that torch accepts"}
        return verdict
    if torch_side is None:
        return verdict
    if "raised" in torch_side:
        return {**verdict, "status": "no_error",
                "detail": f"torch raised (during {torch_side['phase']}) but devtensor returned a result"}
    got = {k: _decode(v) for k, v in dt_side["returned"].items()}
    want = {k: _decode(v) for k, v in torch_side["returned"].items()}
    problems = []
    for k in sorted(set(want) | set(got)):
        if k not in got or k not in want:
            problems.append(f"{k}: only {'torch' if k in want else 'devtensor'} has it")
            continue
        p = _compare(k, got[k], want[k], _case_rtol(case))
        if p:
            problems.append(p)
    if problems:
        return {**verdict, "status": "mismatch", "detail": "; ".join(problems)}
    return verdict


_LIBS = {}


def lib(name):
    if name not in _LIBS:
        _LIBS[name] = Lib(name)
    return _LIBS[name]


def serve(libname):
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed (Python or C) goes to stderr, never into the protocol
    faulthandler.enable(all_threads=True)
    try:
        lib(libname)
    except ImportError as e:
        proto.write(json.dumps({"ready": False, "why": _show_exc(e)}) + "\n")
        return
    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        print(f"--- case {line.strip()[:2000]}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            out = run_side(libname, json.loads(line))
        except Exception as e:  # noqa: BLE001 - a harness bug must not look like a crash
            out = {"harness_error": _show_exc(e), "traceback": traceback.format_exc()[-3000:]}
        out["secs"] = round(time.perf_counter() - t0, 3)
        proto.write(json.dumps(out) + "\n")


def main(argv):
    if len(argv) == 3 and argv[1] == "--serve":
        serve(argv[2])
        return 0
    only = [a for a in argv[1:] if a.startswith("--")]
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1 or not set(only) <= {"--devtensor-only", "--torch-only"}:
        print(__doc__)
        return 2
    faulthandler.enable()
    case = json.loads(args[0])
    dt_side = None if "--torch-only" in only else run_side("devtensor", case)
    print("devtensor:", json.dumps(dt_side)[:3000] if dt_side else "not run")
    torch_side = None if "--devtensor-only" in only else run_side("torch", case)
    print("torch:    ", json.dumps(torch_side)[:3000] if torch_side else "not run")
    if dt_side is None:
        return 0
    verdict = judge(case, dt_side, torch_side)
    print(json.dumps(verdict, indent=1))
    return 0 if verdict["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
