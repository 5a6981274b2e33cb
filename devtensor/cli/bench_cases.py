"""The cases `devtensor bench` times, each with its FLOP and byte count.

A Case is one op at one shape. Its `build(impl, target)` returns a zero-argument callable that
runs the op once with inputs already placed on the device (setup is never timed), optionally with
a note: `fn` or `(fn, note)`. An implementation without an equivalent (numpy has no autograd, so
no conv2d backward) raises Unsupported; the bench lists it as "n/a", not as a failure.

Counts are algorithmic: `flops` counts multiply and add as two (exp, sqrt and the like as one);
`bytes` is the minimum traffic (every input read once, every output written once), so GB/s and
the roofline say how close an implementation gets to what the op must move, whatever temporaries
it makes. `mem_bytes` is a generous estimate of the peak allocation, used to skip a case that
cannot fit before trying it.

Tiers: "small" is what --quick runs (CI, seconds on a 2-core cpu); "medium" the realistic shapes
(MNIST at batch 100, ResNet-50's 3x3 layers at batch 8); "large" the shapes that fill a GPU (run
by default only on cuda).

Its size: the catalogue of cases (about forty), one short builder each; it is data more than logic,
and one file is what `devtensor bench --list` reads.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

import numpy as np

TIERS = ("small", "medium", "large")
F32, I64 = 4, 8

# op name -> what is timed (the --ops vocabulary, in report order)
OPS = {
    "matmul": "a @ b, float32 (square sizes and the MLP's layer shapes)",
    "conv2d": "conv2d forward, 3x3 kernels (MNIST CNN layers, ResNet-50 3x3 layers)",
    "conv2d_backward": "conv2d backward: gradients of input and weight (graph built once, untimed)",
    "sum": "sum over all elements / over each row (dim=1) / over each column (dim=0)",
    "max": "max over all elements",
    "argmax": "argmax over each row (dim=1)",
    "softmax": "softmax over the last dim of (rows, classes)",
    "cross_entropy": "cross-entropy (mean) of (rows, classes) logits and int64 targets, forward",
    "add": "elementwise a + b",
    "gelu": "elementwise gelu (exact, erf form)",
    "adam": "one Adam step over a flat parameter (fused where the implementation offers it)",
    "h2d": "host -> device copy of a pageable float32 buffer (cuda only)",
    "d2h": "device -> host copy (cuda only)",
    "train_mlp": "one training step (zero_grad, forward, cross-entropy, backward, Adam) of the MLP 784-128-10",
    "train_cnn": "one training step of the MNIST CNN (conv 1->32, conv 32->64, maxpool, fc 9216->128->10)",
}

# convenience names for --ops
GROUPS = {
    "conv": ("conv2d", "conv2d_backward"),
    "reduce": ("sum", "max", "argmax"),
    "loss": ("softmax", "cross_entropy"),
    "elementwise": ("add", "gelu", "adam"),
    "transfer": ("h2d", "d2h"),
    "train": ("train_mlp", "train_cnn"),
}

# ops whose heavy lifting is a matmul-like contraction: judged against the TF32 peak under --tf32
TENSOR_CORE_OPS = {"matmul", "conv2d", "conv2d_backward", "train_mlp", "train_cnn"}


class Unsupported(Exception):
    """The implementation has no equivalent of this case."""


@dataclass
class Case:
    op: str
    label: str          # unique within the op; what --sizes pieces match (so: no commas)
    tier: str
    shape: str          # shape description for humans and the JSON
    flops: float
    bytes: float
    mem_bytes: float
    build: object       # (impl, Target) -> fn | (fn, note)
    devices: tuple | None = None  # restricted to these device types (transfers: cuda)
    dtype: str = "float32"
    impls: tuple = ("devtensor", "numpy", "torch", "cupy")  # those with an equivalent


# ---- placing data -------------------------------------------------------------------------------

def _rng():
    # a fixed seed: every implementation and every run sees the same numbers
    return np.random.default_rng(0)


def _randn(shape, scale=1.0):
    return (_rng().standard_normal(shape, dtype=np.float32) * np.float32(scale))


def _targets(n, classes):
    return _rng().integers(0, classes, size=n, dtype=np.int64)


def _dt():
    import devtensor

    return devtensor


class Target:
    """One device, as each implementation spells it; puts host arrays there."""

    def __init__(self, device: str):
        self.device = device  # "cpu", "cuda" or a third-party device type

    @property
    def torch_device(self):
        return self.device if self.device.startswith("cuda") else "cpu"  # "cuda" or "cuda:N"

    def put(self, impl, host, requires_grad=False):
        host = np.ascontiguousarray(host).copy()  # each implementation owns its data
        if impl == "devtensor":
            t = _dt().from_numpy(host).to(self.device)
            return t.requires_grad_() if requires_grad else t
        if impl == "numpy":
            return host
        if impl == "torch":
            import torch

            t = torch.from_numpy(host).to(self.torch_device)
            return t.requires_grad_() if requires_grad else t
        if impl == "cupy":
            import cupy

            return cupy.asarray(host)
        raise Unsupported(f"unknown implementation {impl!r}")


def _xp(impl):
    if impl == "numpy":
        return np
    if impl == "cupy":
        import cupy

        return cupy
    raise Unsupported(f"{impl} has no array-module form of this op")


# ---- matmul -------------------------------------------------------------------------------------

def _matmul(m, k, n, tier, label):
    def build(impl, tg):
        a, b = tg.put(impl, _randn((m, k))), tg.put(impl, _randn((k, n)))
        return lambda: a @ b  # the same spelling in all four

    return Case("matmul", label, tier, f"({m},{k}) @ ({k},{n})", 2.0 * m * k * n,
                F32 * (m * k + k * n + m * n), F32 * (m * k + k * n + 2 * m * n), build)


def matmul_cases():
    out = []
    for n, tier in ((128, "small"), (256, "small"), (512, "medium"), (1024, "medium"), (2048, "medium"),
                    (4096, "large"), (8192, "large")):
        out.append(_matmul(n, n, n, tier, f"{n}x{n}x{n}"))
    # the MLP 784-128-10 at batch 100: both forward layers and the big weight gradient (x^T @ gy)
    out.append(_matmul(100, 784, 128, "small", "mlp fc1 fwd 100x784 @ 784x128"))
    out.append(_matmul(100, 128, 10, "small", "mlp fc2 fwd 100x128 @ 128x10"))
    out.append(_matmul(784, 100, 128, "small", "mlp fc1 grad_w 784x100 @ 100x128"))
    return out


# ---- conv2d -------------------------------------------------------------------------------------

def _im2col_conv(xp, x, w, pad):
    """What a numpy / CuPy user writes instead of a conv kernel: windows as a strided view, one
    tensordot (BLAS / cuBLAS) over (C, KH, KW), back to NCHW."""
    n, c, _, _ = x.shape
    co, _, kh, kw = w.shape
    if pad:
        x = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    s = x.strides
    cols = xp.lib.stride_tricks.as_strided(x, (n, oh, ow, c, kh, kw), (s[0], s[2], s[3], s[1], s[2], s[3]))
    y = xp.tensordot(cols, w, axes=([3, 4, 5], [1, 2, 3]))  # (n, oh, ow, co)
    return xp.ascontiguousarray(y.transpose(0, 3, 1, 2))


def _conv(op, name, batch, cin, cout, hw, pad, tier):
    oh = hw + 2 * pad - 2
    fwd = 2.0 * batch * cout * oh * oh * cin * 9
    xb, wb, yb = F32 * batch * cin * hw * hw, F32 * cout * cin * 9, F32 * batch * cout * oh * oh
    col = F32 * batch * oh * oh * cin * 9  # an im2col buffer, the largest temporary
    scale = 1.0 / math.sqrt(cin * 9)
    label = f"{name} {cin}->{cout} {hw}x{hw} b{batch}"
    shape = f"x ({batch},{cin},{hw},{hw}), w ({cout},{cin},3,3), padding {pad}"

    if op == "conv2d":
        def build(impl, tg):
            x, w = tg.put(impl, _randn((batch, cin, hw, hw))), tg.put(impl, _randn((cout, cin, 3, 3), scale))
            if impl == "devtensor":
                F = _dt().nn.functional
                return lambda: F.conv2d(x, w, padding=pad)
            if impl == "torch":
                import torch.nn.functional as TF

                return lambda: TF.conv2d(x, w, padding=pad)
            xp = _xp(impl)
            return (lambda: _im2col_conv(xp, x, w, pad)), "im2col as a strided view + tensordot"

        return Case(op, label, tier, shape, fwd, xb + wb + yb, 2 * (xb + wb + yb) + col, build)

    def build_bwd(impl, tg):
        xh, wh, gh = _randn((batch, cin, hw, hw)), _randn((cout, cin, 3, 3), scale), _randn((batch, cout, oh, oh))
        if impl == "devtensor":
            dt = _dt()
            x, w, gy = tg.put(impl, xh, True), tg.put(impl, wh, True), tg.put(impl, gh)
            y = dt.nn.functional.conv2d(x, w, padding=pad)
            return lambda: dt.autograd.grad(y, (x, w), gy, retain_graph=True)
        if impl == "torch":
            import torch

            x, w, gy = tg.put(impl, xh, True), tg.put(impl, wh, True), tg.put(impl, gh)
            y = torch.nn.functional.conv2d(x, w, padding=pad)
            return lambda: torch.autograd.grad(y, (x, w), gy, retain_graph=True)
        raise Unsupported(f"{impl} has no autograd (conv2d backward)")

    # grad input reads gy and w, writes gx; grad weight reads gy and x, writes gw
    return Case(op, label, tier, shape, 2 * fwd, 2 * (xb + wb + yb), 3 * (xb + wb + yb) + 2 * col, build_bwd,
                impls=_AUTOGRAD)


_AUTOGRAD = ("devtensor", "torch")  # numpy and CuPy have no autograd: no backward, no training step

MNIST_CONVS = (("mnist conv1", 1, 32, 28, 0), ("mnist conv2", 32, 64, 26, 0))
RESNET_CONVS = (("resnet50 3x3", 64, 64, 56, 1), ("resnet50 3x3", 128, 128, 28, 1),
                ("resnet50 3x3", 256, 256, 14, 1), ("resnet50 3x3", 512, 512, 7, 1))


def conv_cases(batch=None):
    out = []
    for op in ("conv2d", "conv2d_backward"):
        for name, cin, cout, hw, pad in MNIST_CONVS:
            for b, tier in ((10, "small"), (100, "medium")):
                out.append(_conv(op, name, batch or b, cin, cout, hw, pad, tier))
        for name, cin, cout, hw, pad in RESNET_CONVS:
            for b, tier in ((8, "medium"), (32, "large")):
                out.append(_conv(op, name, batch or b, cin, cout, hw, pad, tier))
    return out


# ---- reductions, softmax, cross-entropy ---------------------------------------------------------

_REDUCTIONS = {  # op, case word -> (call, output elements per (rows, cols), output item size)
    ("sum", "all"): (lambda x: x.sum(), lambda r, c: 1, F32),
    ("sum", "rows"): (lambda x: x.sum(1), lambda r, c: r, F32),
    ("sum", "cols"): (lambda x: x.sum(0), lambda r, c: c, F32),
    ("max", "all"): (lambda x: x.max(), lambda r, c: 1, F32),
    ("argmax", "rows"): (lambda x: x.argmax(1), lambda r, c: r, I64),
}


def _reduction(op, word, r, c, tier):
    fn, out_n, isz = _REDUCTIONS[(op, word)]

    def build(impl, tg):
        x = tg.put(impl, _randn((r, c)))
        return lambda: fn(x)  # x.sum(1), x.max(), x.argmax(1): one spelling for all four

    dim = {"all": "all elements", "rows": "dim=1", "cols": "dim=0"}[word]
    return Case(op, f"{word} {r}x{c}", tier, f"({r},{c}), {dim}", float(r * c), F32 * r * c + isz * out_n(r, c),
                F32 * r * c * 2.5, build)  # the host array and its copy coexist while placing it


def reduction_cases():
    out = []
    for r, c, tier in ((1024, 1024, "small"), (4096, 4096, "medium"), (16384, 16384, "large")):
        for key in _REDUCTIONS:
            out.append(_reduction(*key, r, c, tier))
    return out


def _np_softmax(xp, x):
    e = xp.exp(x - x.max(1, keepdims=True))
    e /= e.sum(1, keepdims=True)
    return e


def _np_cross_entropy(xp, x, t, rows):
    m = x.max(1, keepdims=True)
    lse = xp.log(xp.exp(x - m).sum(1)) + m[:, 0]
    return (lse - x[rows, t]).mean()


def _softmax(r, c, tier):
    def build(impl, tg):
        x = tg.put(impl, _randn((r, c)))
        if impl == "devtensor":
            F = _dt().nn.functional
            return lambda: F.softmax(x, dim=1)
        if impl == "torch":
            import torch

            return lambda: torch.softmax(x, 1)
        xp = _xp(impl)
        return (lambda: _np_softmax(xp, x)), "exp(x - max) / sum, in array ops"

    # max, subtract, exp, sum, divide: about 5 flops per element; read x, write y
    return Case("softmax", f"{r}x{c}", tier, f"({r},{c}), dim=1", 5.0 * r * c, 2 * F32 * r * c,
                4 * F32 * r * c, build)


def _cross_entropy(r, c, tier):
    def build(impl, tg):
        x, t = tg.put(impl, _randn((r, c))), tg.put(impl, _targets(r, c))
        if impl == "devtensor":
            F = _dt().nn.functional
            return lambda: F.cross_entropy(x, t)
        if impl == "torch":
            import torch.nn.functional as TF

            return lambda: TF.cross_entropy(x, t)
        xp = _xp(impl)
        rows = xp.arange(r)
        return (lambda: _np_cross_entropy(xp, x, t, rows)), "logsumexp - x[rows, t], in array ops"

    return Case("cross_entropy", f"{r}x{c}", tier, f"logits ({r},{c}), int64 targets ({r},)", 4.0 * r * c,
                F32 * r * c + I64 * r, 4 * F32 * r * c, build)


def loss_cases():
    out = []
    for r, c, tier in ((100, 10, "small"), (256, 1000, "small"), (4096, 1000, "medium"),
                       (16384, 32000, "large")):
        out.append(_softmax(r, c, tier))
        out.append(_cross_entropy(r, c, tier))
    return out


# ---- elementwise and the optimizer step --------------------------------------------------------

def _add(n, tier):
    def build(impl, tg):
        a, b = tg.put(impl, _randn(n)), tg.put(impl, _randn(n))
        return lambda: a + b

    return Case("add", f"{n} elem", tier, f"({n},) + ({n},)", float(n), 3 * F32 * n, 6 * F32 * n, build)


def _gelu(n, tier):
    def build(impl, tg):
        x = tg.put(impl, _randn(n))
        if impl == "devtensor":
            F = _dt().nn.functional
            return lambda: F.gelu(x)
        if impl == "torch":
            import torch.nn.functional as TF

            return lambda: TF.gelu(x)
        if impl == "cupy":
            from cupyx.scipy.special import erf
        else:
            try:
                from scipy.special import erf
            except ImportError:
                raise Unsupported("numpy has no erf (install scipy for a numpy gelu baseline)") from None
        k = np.float32(1 / math.sqrt(2))
        return (lambda: 0.5 * x * (1 + erf(x * k))), "0.5 x (1 + erf(x / sqrt 2)), in array ops"

    # erf counted as ~10 flops; read x, write y
    return Case("gelu", f"{n} elem", tier, f"({n},)", 14.0 * n, 2 * F32 * n, 8 * F32 * n, build)


ADAM = {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8}


def _optim_module():
    try:
        return importlib.import_module("devtensor.optim")
    except ImportError:
        return None


def manual_adam(params):
    """Adam written in devtensor Tensor ops: used only while devtensor.optim does not exist."""
    dt = _dt()
    state = [(p, dt.zeros_like(p), dt.zeros_like(p)) for p in params]
    t = [0]
    lr, b1, b2, eps = ADAM["lr"], ADAM["b1"], ADAM["b2"], ADAM["eps"]

    def step():
        t[0] += 1
        bc1, bc2 = 1 - b1 ** t[0], 1 - b2 ** t[0]
        with dt.no_grad():
            for p, m, v in state:
                g = p.grad
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).add_(g * g, alpha=1 - b2)
                p.sub_(m / ((v / bc2).sqrt() + eps), alpha=lr / bc1)

    return step


def dt_optimizer(params):
    """(step, zero_grad, note): devtensor.optim.Adam when it exists, else manual_adam."""
    optim = _optim_module()
    Adam = getattr(optim, "Adam", None)
    if Adam is not None:
        opt = Adam(params, lr=ADAM["lr"])
        return opt.step, opt.zero_grad, "devtensor.optim.Adam"

    def zero():
        for p in params:
            p.grad = None

    return manual_adam(params), zero, "manual Adam in Tensor ops (devtensor.optim not available)"


_CUPY_ADAM = []


def _cupy_adam_kernel():
    # one fused pass over p, g, m, v: what a CuPy user writes for an optimizer step
    if not _CUPY_ADAM:
        import cupy

        _CUPY_ADAM.append(cupy.ElementwiseKernel(
            "T g, T b1, T b2, T step_size, T bc2_sqrt, T eps", "T p, T m, T v",
            "m = b1 * m + (1 - b1) * g; v = b2 * v + (1 - b2) * g * g;"
            "p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps);", "devtensor_bench_adam"))
    return _CUPY_ADAM[0]


def _np_adam_step(xp, p, g, m, v, tmp, t):
    """numpy Adam with out= everywhere (no per-step allocation): several passes, not fused."""
    lr, b1, b2, eps = ADAM["lr"], ADAM["b1"], ADAM["b2"], ADAM["eps"]
    t[0] += 1
    bc1, bc2 = 1 - b1 ** t[0], 1 - b2 ** t[0]
    m *= b1
    xp.multiply(g, 1 - b1, out=tmp)
    m += tmp
    v *= b2
    xp.multiply(g, g, out=tmp)
    tmp *= 1 - b2
    v += tmp
    xp.sqrt(v, out=tmp)
    tmp *= 1 / math.sqrt(bc2)
    tmp += eps
    xp.divide(m, tmp, out=tmp)
    tmp *= -lr / bc1
    p += tmp


def _adam(n, tier, what):
    def build(impl, tg):
        ph, gh = _randn(n), _randn(n, 1e-3)
        if impl == "devtensor":
            p, g = tg.put(impl, ph, True), tg.put(impl, gh)
            step, _, note = dt_optimizer([p])
            p.grad = g
            return step, note
        if impl == "torch":
            import torch

            p, g = tg.put(impl, ph, True), tg.put(impl, gh)
            p.grad = g
            try:
                opt, note = torch.optim.Adam([p], lr=ADAM["lr"], fused=True), "torch.optim.Adam(fused=True)"
                opt.step()  # fused support is checked at the first step on some versions
            except (RuntimeError, TypeError, ValueError):
                opt, note = torch.optim.Adam([p], lr=ADAM["lr"]), "torch.optim.Adam (fused unsupported here)"
            return opt.step, note
        if impl == "cupy":
            xp = _xp(impl)
            p, g, m, v = (xp.asarray(a) for a in (ph, gh, np.zeros(n, np.float32), np.zeros(n, np.float32)))
            kern, t = _cupy_adam_kernel(), [0]
            f = np.float32

            def step():
                t[0] += 1
                b1, b2 = ADAM["b1"], ADAM["b2"]
                kern(g, f(b1), f(b2), f(ADAM["lr"] / (1 - b1 ** t[0])), f(math.sqrt(1 - b2 ** t[0])),
                     f(ADAM["eps"]), p, m, v)

            return step, "cupy.ElementwiseKernel, one fused pass"
        p, g = ph.copy(), gh.copy()
        m, v, tmp, t = np.zeros(n, np.float32), np.zeros(n, np.float32), np.empty(n, np.float32), [0]
        return (lambda: _np_adam_step(np, p, g, m, v, tmp, t)), "in-place ufuncs with out=, several passes"

    # ~13 flops per parameter; reads p, g, m, v and writes p, m, v
    return Case("adam", f"{n} params ({what})", tier, f"({n},) float32 p, g, exp_avg, exp_avg_sq",
                13.0 * n, 7 * F32 * n, 8 * F32 * n, build)


def elementwise_cases():
    out = []
    for n, tier in ((1 << 10, "small"), (1 << 20, "small"), (1 << 24, "medium"), (1 << 28, "large")):
        out.append(_add(n, tier))
        out.append(_gelu(n, tier))
    out.append(_adam(101_770, "small", "MLP 784-128-10"))
    out.append(_adam(25_557_032, "medium", "ResNet-50"))
    out.append(_adam(1 << 28, "large", "2^28"))
    return out


# ---- host <-> device ----------------------------------------------------------------------------

def _transfer(op, nbytes, tier):
    n = nbytes // F32

    def build(impl, tg):
        host = _randn(n)
        if impl == "devtensor":
            dt = _dt()
            if op == "h2d":
                ht = dt.from_numpy(host)
                return lambda: ht.to(tg.device)
            dtt = dt.from_numpy(host).to(tg.device)
            return lambda: dtt.to("cpu")
        if impl == "torch":
            import torch

            if op == "h2d":
                th = torch.from_numpy(host)
                return lambda: th.to(tg.torch_device)
            tt = torch.from_numpy(host).to(tg.torch_device)
            return lambda: tt.cpu()
        if impl == "cupy":
            import cupy

            if op == "h2d":
                return lambda: cupy.asarray(host)
            c = cupy.asarray(host)
            return lambda: cupy.asnumpy(c)
        raise Unsupported(f"{impl} has no device memory")

    label = f"{nbytes / 2**20:g} MiB"
    return Case(op, label, tier, f"({n},) float32, pageable host memory", 0.0, float(nbytes), 2.0 * nbytes,
                build, devices=("cuda",), impls=("devtensor", "torch", "cupy"))


def transfer_cases():
    out = []
    for nbytes, tier in ((1 << 20, "small"), (64 << 20, "medium"), (1 << 30, "large")):
        out += [_transfer("h2d", nbytes, tier), _transfer("d2h", nbytes, tier)]
    return out


# ---- whole training steps -----------------------------------------------------------------------

def _uniform(shape, bound):
    return (_rng().uniform(-bound, bound, size=shape)).astype(np.float32)


def _dt_linear(tg, fan_in, fan_out):
    """(layer, params, used_module) with nn.Linear if it exists, else functional + parameters."""
    dt = _dt()
    if hasattr(dt.nn, "Linear"):
        m = dt.nn.Linear(fan_in, fan_out)
        m.to(tg.device)  # Module.to moves in place and keeps the Parameter objects
        return m, list(m.parameters()), True
    b = 1 / math.sqrt(fan_in)
    W = tg.put("devtensor", _uniform((fan_out, fan_in), b), True)
    bias = tg.put("devtensor", _uniform((fan_out,), b), True)
    F = dt.nn.functional
    return (lambda x: F.linear(x, W, bias)), [W, bias], False


def _dt_conv(tg, cin, cout):
    dt = _dt()
    if hasattr(dt.nn, "Conv2d"):
        m = dt.nn.Conv2d(cin, cout, 3)
        m.to(tg.device)
        return m, list(m.parameters()), True
    b = 1 / math.sqrt(cin * 9)
    W = tg.put("devtensor", _uniform((cout, cin, 3, 3), b), True)
    bias = tg.put("devtensor", _uniform((cout,), b), True)
    F = dt.nn.functional
    return (lambda x: F.conv2d(x, W, bias)), [W, bias], False


def _dt_model(kind, tg):
    """(forward, params, note) of the MLP or the CNN in devtensor."""
    F = _dt().nn.functional
    if kind == "mlp":
        (fc1, p1, m1), (fc2, p2, _) = _dt_linear(tg, 784, 128), _dt_linear(tg, 128, 10)
        note = "nn.Linear" if m1 else "F.linear with manual parameters (nn.Linear not available)"
        return (lambda x: fc2(F.relu(fc1(x)))), p1 + p2, note
    (c1, q1, mc), (c2, q2, _) = _dt_conv(tg, 1, 32), _dt_conv(tg, 32, 64)
    (fc1, p1, ml), (fc2, p2, _) = _dt_linear(tg, 9216, 128), _dt_linear(tg, 128, 10)

    def forward(x):
        x = F.max_pool2d(F.relu(c2(F.relu(c1(x)))), 2)
        return fc2(F.relu(fc1(x.reshape(x.shape[0], 9216))))

    note = ("nn.Conv2d" if mc else "F.conv2d with manual parameters (nn.Conv2d not available)") + ", " + \
           ("nn.Linear" if ml else "F.linear with manual parameters (nn.Linear not available)")
    return forward, q1 + q2 + p1 + p2, note


def _torch_model(kind, tg):
    import torch
    from torch import nn

    if kind == "mlp":
        model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10))
    model.to(tg.torch_device)
    opt = torch.optim.Adam(model.parameters(), lr=ADAM["lr"])  # PyTorch's default Adam, as users run it
    return model, opt


# (kind) -> layer list: ("linear", in, out) or ("conv", cin, cout, hw_in) for the FLOP count
_LAYERS = {
    "mlp": (("linear", 784, 128), ("linear", 128, 10)),
    "cnn": (("conv", 1, 32, 28), ("conv", 32, 64, 26), ("linear", 9216, 128), ("linear", 128, 10)),
}
_ACTS = {"mlp": 784 + 128 + 10, "cnn": 784 + 32 * 26 * 26 + 64 * 24 * 24 + 9216 + 128 + 10}


def _train_counts(kind, batch):
    flops, params = 0.0, 0
    for i, layer in enumerate(_LAYERS[kind]):
        if layer[0] == "linear":
            _, fi, fo = layer
            f, params = 2.0 * batch * fi * fo, params + fi * fo + fo
        else:
            _, ci, co, hw = layer
            f, params = 2.0 * batch * co * (hw - 2) ** 2 * ci * 9, params + co * ci * 9 + co
        flops += f * (2 if i == 0 else 3)  # forward, grad weight, and grad input except for layer 1
    flops += 13 * params  # the Adam step
    acts = batch * _ACTS[kind]
    # weights read in forward and backward, Adam's 7 passes; activations written, read back, and
    # their gradients written: an approximate minimum, documented as such
    nbytes = F32 * (2 * params + 7 * params + 3 * acts)
    return flops, nbytes, params, acts


def _train(kind, batch, tier):
    flops, nbytes, params, acts = _train_counts(kind, batch)
    xshape = (batch, 784) if kind == "mlp" else (batch, 1, 28, 28)

    def build(impl, tg):
        xh, yh = _randn(xshape), _targets(batch, 10)
        if impl == "devtensor":
            F = _dt().nn.functional
            forward, ps, note = _dt_model(kind, tg)
            step_opt, zero, onote = dt_optimizer(ps)
            x, y = tg.put(impl, xh), tg.put(impl, yh)

            def step():
                zero()
                F.cross_entropy(forward(x), y).backward()
                step_opt()

            return step, f"{note}; {onote}"
        if impl == "torch":
            import torch.nn.functional as TF

            model, opt = _torch_model(kind, tg)
            x, y = tg.put(impl, xh), tg.put(impl, yh)

            def tstep():
                opt.zero_grad()
                TF.cross_entropy(model(x), y).backward()
                opt.step()

            return tstep, "torch.nn + torch.optim.Adam (defaults)"
        raise Unsupported(f"{impl} has no autograd (training step)")

    name = "MLP 784-128-10" if kind == "mlp" else "MNIST CNN"
    return Case(f"train_{kind}", f"{name} b{batch}", tier, f"input {xshape}, {params:,} parameters", flops, nbytes,
                F32 * (8 * params + 6 * acts), build, impls=_AUTOGRAD)


def train_cases(batch=None):
    out = []
    for b, tier in ((100, "small"), (1000, "medium"), (10000, "large")):
        out.append(_train("mlp", batch or b, tier))
    for b, tier in ((10, "small"), (100, "medium"), (512, "large")):
        out.append(_train("cnn", batch or b, tier))
    return out


# ---- the catalogue ------------------------------------------------------------------------------

def all_cases(batch=None):
    """Every case, in report order; `batch` replaces the batch of the conv and training cases
    (duplicates that the override creates are dropped)."""
    cases = (matmul_cases() + conv_cases(batch) + reduction_cases() + loss_cases() + elementwise_cases()
             + transfer_cases() + train_cases(batch))
    order = {op: i for i, op in enumerate(OPS)}
    seen, out = set(), []
    for c in sorted(cases, key=lambda c: order[c.op]):  # stable: sizes stay ascending within an op
        if (c.op, c.label) not in seen:
            seen.add((c.op, c.label))
            out.append(c)
    return out
