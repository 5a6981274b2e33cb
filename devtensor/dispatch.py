"""The op table: each op is declared once (an OpDef) and every call goes through `call`.

call(op, args, attrs):
    1. device  - every tensor argument on one device (a 0-d cpu tensor may join any device);
    2. dtype   - the op's dtype rule picks the compute dtype from ONE cached promotion table and
                 casts tensor arguments to it, so kernels see validated, same-dtype inputs;
    3. kernel  - op.kernels[device.type](*arrays, **attrs) -> array(s), errors re-raised with the
                 op, the shapes, the dtypes and the device;
    4. wrap    - arrays become Tensors on the device (0-d scalars normalised once, here);
    5. record  - when grad mode is on and an input requires grad, one autograd Node.
"""
from __future__ import annotations

import os

import numpy as np

from . import backends as _backends
from . import dtypes as _dt
from .autograd.grad_mode import _grad_state, _off_count
from .autograd.node import Node

_record = Node.record
from .device import device as _device
from .tensor import Tensor, _wrap

OPS: dict = {}

_SYNC = [os.environ.get("DEVTENSOR_SYNC", "") not in ("", "0")]
_TRACE = [None]  # fn(op, args, attrs, outs, kernel_arrays) after every call while a graph capture runs (devtensor/graph)

# classes that take the fast path (Tensor and its field-less subclasses, e.g. nn.Parameter adds itself)
TENSOR_CLASSES = {Tensor}

# dtype rules: how the compute dtype and the output dtype follow from the inputs
PROMOTE = "promote"      # arithmetic: result_type of all inputs; output has it (add, mul, where)
DIVIDE = "divide"        # true division: result_type made floating
COMPARE = "compare"      # compare in result_type; output bool
FLOAT = "float"          # unary math: integer inputs become the default float (exp, sin)
KEEP = "keep"            # no casting: the public function chose the dtypes (or the op keeps its input's);
                         # the output dtype is the meta rule's (shape ops, conv, reductions, steps)

# numpy dtypes by how the fast path treats them (OpDef.set_complex): kind "f" (float-valued ops take these as
# they are; bfloat16, kind "V", goes the slow path as before), complex, and every real dtype devtensor has
_FLOAT_NP = frozenset(d.np for d in _dt.ALL if d.np is not None and d.np.kind == "f")
_COMPLEX_NP = frozenset(d.np for d in _dt.COMPLEX)
_REAL_NP = frozenset(d.np for d in _dt.ALL if d.np is not None and not d.is_complex)


class OpDef:
    """One op: its name (the dispatch key), dtype rule, backward rule and test metadata."""

    __slots__ = ("name", "inputs", "rule", "backward", "save", "save_idx", "ref", "samples",
                 "kernels", "nout", "diff_outputs", "view", "composite", "differentiable",
                 "grad_inputs", "doc", "shown_as", "meta", "check", "complex", "fast_dtypes", "mutates",
                 "__weakref__")

    def __init__(self, name, inputs, rule, backward, save, ref, samples, nout, diff_outputs,
                 view, differentiable, grad_inputs, doc, shown_as=None, meta=None, check=False, complex=False,
                 mutates=()):
        self.name = name
        self.rule = rule
        self.set_complex(complex)
        # the inputs the kernel writes in place, by position (an optimizer step's param and state,
        # copy_'s dst): graph replay keeps such nodes, callers bump those tensors' versions
        self.mutates = _mutated_positions(name, inputs, mutates)
        # meta(*arrays, **attrs) -> (shape, numpy dtype), or a tuple of them for nout > 1: the op's
        # checks and output spec from shapes, dtypes and attributes alone (arrays are anything with
        # .shape and .dtype, already cast by the dtype rule). It is the meta device's kernel, graph
        # capture's shape propagation and the source of every argument error. `check`: run it before
        # the kernel on every call (ops whose numba / CUDA kernels index memory by the arguments);
        # other ops run it only when their kernel fails, to turn the failure into the rule's error.
        self.meta = meta
        self.check = check
        self.shown_as = shown_as or name  # the name errors use: the public function an internal op serves
        self.inputs = tuple(inputs)
        self.backward = backward
        self.save = tuple(save)
        idx = []
        for s in self.save:  # inputs by position; outputs as -1 ("out", "out0"), -2 ("out1"), ...
            if s == "out":
                idx.append(-1)
            elif s.startswith("out") and s[3:].isdigit():
                idx.append(-1 - int(s[3:]))
            else:
                idx.append(self.inputs.index(s))
        self.save_idx = tuple(idx)
        self.ref = ref
        self.samples = samples
        self.kernels: dict = {}
        self.nout = nout
        self.diff_outputs = diff_outputs
        self.view = view
        self.composite = None
        self.differentiable = differentiable and backward is not None
        self.grad_inputs = grad_inputs  # which inputs get gradients (None: all)
        self.doc = doc

    def __repr__(self):
        return f"<op {self.name}>"

    def set_complex(self, flag):
        """Whether the op takes complex arrays: call() refuses complex arguments of the others, on every device
        alike (numpy would order complex numbers in max or sort, not raise). fast_dtypes: the numpy dtypes
        call()'s fast path (all arguments of one dtype) takes as they are, None for all; others go the slow
        path, which casts (integers for float-valued ops) or refuses (complex). A slot read (and for ops that
        refuse complex a set lookup, as cheap as the rule-table lookup it replaced) decides."""
        self.complex = bool(flag)
        if self.rule in (FLOAT, DIVIDE):
            self.fast_dtypes = _FLOAT_NP | _COMPLEX_NP if flag else _FLOAT_NP
        else:
            self.fast_dtypes = None if flag else _REAL_NP

    def __call__(self, *args, **attrs):
        return call(self, args, attrs)


def defop(name, inputs=("x",), *, rule=KEEP, meta=None, check=False, backward=None, save=(), ref=None,
          samples=None, nout=1, diff_outputs=None, view=False, differentiable=True, grad_inputs=None, doc="",
          shown_as=None, complex=False, mutates=()):
    if name in OPS:
        raise ValueError(f"op {name!r} is declared twice")
    op = OpDef(name, inputs, rule, backward, save, ref, samples, nout,
               diff_outputs if diff_outputs is not None else tuple(range(nout)), view,
               differentiable, grad_inputs, doc, shown_as, meta, check, complex, mutates)
    for be in _backends.registered().values():
        fn = be.resolve(name)
        if fn is not None:
            op.kernels[be.name] = fn
    OPS[name] = op
    return op


def _mutated_positions(name, inputs, mutates):
    """mutates (input names) as positions. An op that writes an input is named with a trailing '_'
    (PyTorch's in-place convention) and only such an op may: the name tells a reader, the field
    tells the code (graph replay, version counters)."""
    if isinstance(mutates, str):
        mutates = (mutates,)
    unknown = [m for m in mutates if m not in inputs]
    if unknown:
        raise ValueError(f"op {name!r}: mutates={tuple(mutates)} names {unknown}, which are not among its "
                         f"inputs {tuple(inputs)}")
    if bool(mutates) != name.endswith("_"):
        raise ValueError(f"op {name!r}: an op that writes its inputs is named with a trailing '_' and declares "
                         "them with mutates=(...); " + ("it declares none" if not mutates else "its name lacks the '_'"))
    return tuple(tuple(inputs).index(m) for m in mutates)


_FINALISED = [False]


def _on_kernel(backend_name, op_name):
    """A backend registered a kernel: refresh the op's entry (ops declared later pick theirs up in defop)."""
    op = OPS.get(op_name)
    if op is not None:
        op.kernels[backend_name] = _backends.get_backend(backend_name).resolve(op_name)
    elif _FINALISED[0]:
        raise ValueError(f"backend {backend_name!r} registers a kernel for {op_name!r}, which no op declares")


_backends.add_listener(_on_kernel)


def finalise():
    """Called once every op is declared: a kernel registered under a name no op declares is an error
    (a typo, or an op that was renamed), and the meta device gets its kernels from the meta rules."""
    for be in _backends.registered().values():
        be.finalise(OPS.keys())
    _FINALISED[0] = True


# ---- errors ---------------------------------------------------------------------------------

def _describe(args):
    parts = []
    for a in args:
        d = getattr(a, "_data", None)
        if d is not None:
            parts.append(f"tensor(shape={tuple(d.shape)}, dtype={_dt.from_numpy_dtype(d.dtype).name}, "
                         f"device={a._device})")
        elif a is None:
            parts.append("None")
        else:
            parts.append(f"{type(a).__name__} {a!r}"[:60])
    return ", ".join(parts)


def op_error(op_name, msg, args=(), cls=RuntimeError):
    desc = f" [arguments: {_describe(args)}]" if args else ""
    return cls(f"{op_name}: {msg}{desc}")


def _no_kernel(op, dev):  # names the table's key (op.name): the one to register a kernel under
    have = sorted(k for k in op.kernels)
    return NotImplementedError(
        f"{op.name}: no kernel for device '{dev.type}'; devices that have it: "
        f"{', '.join(have) if have else 'none'}")


_ERROR_CLASSES = {IndexError: IndexError, TypeError: TypeError, ValueError: ValueError,
                  ZeroDivisionError: ZeroDivisionError, MemoryError: MemoryError,
                  NotImplementedError: NotImplementedError}
_RULE_ERRORS = (ValueError, TypeError, IndexError, RuntimeError, ZeroDivisionError)


def _kernel_failed(op, e, args):
    cls = {IndexError: IndexError, TypeError: TypeError, ZeroDivisionError: ZeroDivisionError,
           MemoryError: MemoryError}.get(type(e), RuntimeError)
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return op_error(op.shown_as, msg, args, cls)


def run_rule(op, arrays, attrs, args=()):
    """The op's meta rule on `arrays`; its errors come out named for the op, with the arguments."""
    try:
        return op.meta(*arrays, **attrs)
    except _RULE_ERRORS as e:
        raise op_error(op.shown_as, str(e), args, _ERROR_CLASSES.get(type(e), RuntimeError)) from None


# ---- the call path --------------------------------------------------------------------------

def _common_device(op, args):
    dev = None
    for a in args:
        d = getattr(a, "_device", None)
        if d is None or d is dev:
            continue
        if dev is None:
            dev = d
        elif a._data.ndim == 0 and d.type == "cpu":
            continue  # a 0-d cpu tensor joins any device, as in PyTorch
        elif dev.type == "cpu" and _first_is_cpu_scalar(args, dev):
            dev = d
        else:
            raise op_error(op.shown_as, f"expected all tensors on one device, but got {dev} and {d} "
                           "(move one with .to(device); remember that .to() returns a new tensor: "
                           "assign its result)", args)
    return dev


def _first_is_cpu_scalar(args, dev):
    return all(getattr(a, "_device", None) is not dev or a._data.ndim == 0 for a in args)


def _compute_dtype(op, args):
    dims, zeros, scalars = [], [], []
    for a in args:
        d = getattr(a, "_data", None)
        if d is not None:
            (zeros if d.ndim == 0 else dims).append(_dt._FROM_NP[d.dtype])
        elif a is not None:
            scalars.append(_dt._scalar_dtype(a))
    r = _dt.result_type_key(tuple(dims), tuple(zeros), tuple(scalars))
    return _dt.float_of(r) if op.rule is DIVIDE else r


def _no_complex(op, args):
    d = next((a.dtype.name for a in args if isinstance(a, Tensor) and a.dtype.is_complex), "complex")
    return op_error(op.shown_as, f"not implemented for complex tensors ({d}); take .real, .imag or .abs() first",
                    args, NotImplementedError)


_PYTYPE = {0: bool, 1: int, 2: float, 3: complex}


def call(op, args, attrs):
    """Run `op` on `args` (Tensors and Python scalars) with keyword attributes `attrs`."""
    # Fast path: every argument a Tensor on one device with one dtype (the common case in
    # training loops): nothing to promote, cast or move.
    rule = op.rule
    a0 = args[0] if args else None
    if a0.__class__ in TENSOR_CLASSES:
        dev = a0._device
        x0 = a0._data
        d0 = x0.dtype
        fd = op.fast_dtypes
        fast = fd is None or d0 in fd
        rg = a0._rg  # whether any input requires grad, gathered on the way (no second pass)
        if fast:
            n = len(args)
            if n == 1:
                arrays = (x0,)
            elif n == 2:  # binary ops are most calls: no list, no loop
                a1 = args[1]
                if a1.__class__ in TENSOR_CLASSES and a1._device is dev and a1._data.dtype is d0:
                    arrays = (x0, a1._data)
                    rg = rg or a1._rg
                elif a1 is None and rule is KEEP:
                    arrays = (x0, None)
                else:
                    fast = False
            else:
                arrays = [x0]
                for a in args[1:]:
                    if a.__class__ in TENSOR_CLASSES and a._device is dev and a._data.dtype is d0:
                        arrays.append(a._data)
                        rg = rg or a._rg
                    elif a is None and rule is KEEP:
                        arrays.append(None)
                    else:
                        fast = False
                        break
        if not fast:
            dev, arrays = _slow_args(op, args, rule)
            rg = _any_requires_grad(args)
    else:
        dev, arrays = _slow_args(op, args, rule)
        rg = _any_requires_grad(args)
    fn = op.kernels.get(dev.type)
    if fn is None:
        raise _no_kernel(op, dev)
    if op.check:
        run_rule(op, arrays, attrs, args)
    try:
        # an empty `**{}` splat is a measurable share of a 1-element op: pass attrs only when there are some
        raw = fn(*arrays, **attrs) if attrs else fn(*arrays)
    except _backends.NoKernel:
        if op.composite is None:
            raise
        return op.composite(*args, **attrs)  # the chain's last tier: the op written in other ops
    except (ValueError, TypeError, IndexError, ZeroDivisionError, AssertionError, MemoryError, RuntimeError) as e:
        if op.meta is not None and not op.check:
            run_rule(op, arrays, attrs, args)  # the rule's error, the same on every device, if it has one
        raise _kernel_failed(op, e, args) from None
    if op.nout == 1:
        if raw.__class__ is not _ARRAY_TYPES.get(dev.type):
            raw = _ensure(raw, dev)
        if rule is COMPARE and raw.dtype != np.bool_:
            raw = raw.astype(np.bool_)
        out = _wrap(raw, dev)
        outs = (out,)
    else:
        outs = tuple(_wrap(r if r.__class__ is _ARRAY_TYPES.get(dev.type) else _ensure(r, dev), dev) for r in raw)
        out = outs
    if op.view:
        base = args[0]
        vc = base._shared_vc()
        root = base._base if base._base is not None else base
        for o in outs:
            o._vc = vc
            o._base = root
    # grad mode is read only when an input requires grad, and the thread-local only while
    # some thread has it off (grad_mode._off_count)
    if rg and op.differentiable and (not _off_count[0] or _grad_state.enabled):
        _record(op, args, attrs, outs)
    if _after is not None:  # DEVTENSOR_SYNC's check, graph capture's trace: one test while neither runs
        _after(op, dev, args, attrs, outs, arrays)
    return out


def _any_requires_grad(args):
    for a in args:
        if isinstance(a, Tensor) and a._rg:
            return True
    return False


def _ensure(raw, dev):
    be = _backend(dev)
    if be.array_type is not None:  # cuda learns its array type when cupy is first imported
        _ARRAY_TYPES[dev.type] = be.array_type
        if raw.__class__ is be.array_type:
            return raw
    return be.ensure_array(raw)


_SCALARS = (bool, int, float, complex)


def _coerce(op, args):
    """numpy arrays become tensors, numpy scalars Python scalars; anything else is an error."""
    out = None
    for i, a in enumerate(args):
        if a is None or a.__class__ in _SCALARS or isinstance(a, Tensor):
            continue
        if out is None:
            out = list(args)
        if isinstance(a, np.generic):
            out[i] = a.item()
        elif isinstance(a, np.ndarray):
            out[i] = _wrap(a, _device("cpu")) if a.ndim else a.item()
        elif isinstance(a, (bool, int, float, complex)):
            out[i] = a
        else:
            raise op_error(op.shown_as, f"unsupported argument of type {type(a).__name__} (expected a Tensor or a "
                           "Python number)", (), TypeError)
    return args if out is None else tuple(out)


def _slow_args(op, args, rule):
    args = _coerce(op, args)
    dev = _common_device(op, args)
    if dev is None:
        raise op_error(op.shown_as, "needs at least one tensor argument", args, TypeError)
    if rule is not KEEP:
        if rule is FLOAT:
            cd = _dt.float_of(_dt._FROM_NP[args[0]._data.dtype])
        else:
            cd = _compute_dtype(op, args)
        if cd._cat == 3 and not op.complex:
            raise _no_complex(op, args)
        return dev, _cast_args(args, cd, dev)
    arrays = [a._data if isinstance(a, Tensor) else a for a in args]
    if not op.complex:
        for a in arrays:
            if getattr(a, "dtype", None) is not None and a.dtype.kind == "c":
                raise _no_complex(op, args)
    if dev.type != "cpu":
        arrays = _move_cpu_scalars(args, arrays, dev)
    return dev, arrays


def _cast_args(args, cd, dev):
    npd = cd.np
    arrays = []
    for a in args:
        if a.__class__ is Tensor or isinstance(a, Tensor):
            d = a._data
            if a._device is not dev:  # a 0-d cpu tensor joining another device
                d = _backend(dev).from_numpy(np.asarray(a._data), dev)
            if d.dtype != npd:
                d = d.astype(npd)
            arrays.append(d)
        elif a is None:
            arrays.append(None)
        else:
            v = _PYTYPE[cd._cat](a)
            if npd.kind == "V" or (cd._cat == 1 and not 0 <= v < 128):
                # a numpy scalar of the compute dtype: bfloat16 stays bfloat16 (a Python float would make
                # ml_dtypes compute in float32), out-of-range ints wrap as in PyTorch instead of OverflowError
                v = np.asarray(v).astype(npd)[()]
            arrays.append(v)
    return arrays


def _move_cpu_scalars(args, arrays, dev):
    return [_backend(dev).from_numpy(np.asarray(a._data), dev)
            if isinstance(a, Tensor) and a._device is not dev else x for a, x in zip(args, arrays)]


_BACKENDS: dict = {}


def _backend(dev):
    be = _BACKENDS.get(dev.type)
    if be is None:
        be = _BACKENDS[dev.type] = _backends.get_backend(dev.type)
    return be


_ARRAY_TYPES: dict = {}  # device type -> its array class, filled on first use


def _sync_check(op, dev, args):
    try:
        _backend(dev).synchronize(dev)
    except Exception as e:
        raise op_error(op.shown_as, f"device error after this op's kernel (DEVTENSOR_SYNC=1): {e}", args) from None


def set_trace(fn) -> None:
    """Install (or, with None, remove) the function graph capture hears every op call through."""
    _TRACE[0] = fn
    _set_after()


def set_sync_debug(flag: bool) -> None:
    """Synchronize after every kernel and name the op that failed (DEVTENSOR_SYNC=1)."""
    _SYNC[0] = bool(flag)
    _set_after()


def _run_after(op, dev, args, attrs, outs, arrays):
    if _SYNC[0]:
        _sync_check(op, dev, args)
    trace = _TRACE[0]
    if trace is not None:
        trace(op, args, attrs, outs, arrays)


def _set_after():
    """call()'s one hook after each kernel: _run_after while a sync check or a trace is on, else None."""
    global _after
    _after = _run_after if _SYNC[0] or _TRACE[0] is not None else None


_after = None
_set_after()
