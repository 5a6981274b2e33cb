"""Every collective against numpy, on every rank (run by tests/test_distributed.py):

    mpiexec -n 2 python -m mpi4py tests/distributed/collective_checks.py [--fake-nccl | --nccl]

With --fake-nccl the same checks run on cuda tensors through the NCCL adapter
(devtensor/distributed/nccl.py), over tests/distributed/fakenccl.py: the kernel emulator's stand-in
CuPy plus a stand-in cupy.cuda.nccl whose communicator reduces the device pointers it is given over
MPI. With --nccl they run on real GPUs through CuPy's NCCL (one GPU per rank, cuda:{local rank};
a 1-process communicator works too). Prints "OK <name>" per check on rank 0; a failure raises and
ends the job non-zero."""
from __future__ import annotations

import sys

import numpy as np

FAKE = "--fake-nccl" in sys.argv
REAL_NCCL = "--nccl" in sys.argv
if FAKE:
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import fakenccl

    fakenccl.install()

import devtensor as dt  # noqa: E402
import devtensor.distributed as dist  # noqa: E402

dist.init_process_group("nccl" if FAKE or REAL_NCCL else "mpi")
RANK, WORLD = dist.get_rank(), dist.get_world_size()
DEV = f"cuda:{dist.get_local_rank()}" if REAL_NCCL else "cuda" if FAKE else "cpu"
NCCL = FAKE or REAL_NCCL
PG = dist.api._state["pg"]


def ok(name):
    if RANK == 0:
        print("OK", name, flush=True)


def per_rank(r, shape, dtype, seed=0):
    """Rank r's input: the same on every rank's reference, different across r."""
    g = np.random.default_rng(seed * 100 + r)
    if np.dtype(dtype).kind == "b":
        return g.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind in "iu":
        return g.integers(-5 if np.dtype(dtype).kind == "i" else 0, 6, shape).astype(dtype)
    return g.uniform(-2, 2, shape).astype(dtype)


def T(a, dtype=None):
    return dt.tensor(a, dtype=dtype, device=DEV)


def host(t):
    return t.cpu().numpy()


REFS = {"SUM": lambda xs: np.sum(xs, axis=0), "MAX": lambda xs: np.max(xs, axis=0),
        "MIN": lambda xs: np.min(xs, axis=0), "PRODUCT": lambda xs: np.prod(xs, axis=0),
        "AVG": lambda xs: np.sum(xs, axis=0) / len(xs)}


def check_all_reduce():
    dtypes = ["float32", "float64", "int32", "int64", "float16"] + ([] if NCCL else ["int8", "uint8"])
    for dtype in dtypes:
        for op in ("SUM", "MAX", "MIN", "PRODUCT", "AVG"):
            if op == "AVG" and np.dtype(dtype).kind != "f":
                continue
            for shape in ((5,), (3, 4), ()):
                xs = [per_rank(r, shape, dtype, seed=1) for r in range(WORLD)]
                t = T(xs[RANK])
                dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
                want = REFS[op](np.stack(xs)).astype(dtype)
                tol = 1e-3 if dtype == "float16" else 1e-6
                np.testing.assert_allclose(host(t), want, rtol=tol, atol=tol, err_msg=f"{op} {dtype} {shape}")
                assert t.dtype == getattr(dt, dtype) and tuple(t.shape) == shape
    # bool (logical or / and), bfloat16 (reduced in float32 over MPI), a transposed (non-contiguous) view
    xs = [per_rank(r, (6,), bool, seed=2) for r in range(WORLD)]
    t = T(xs[RANK])
    dist.all_reduce(t)
    assert np.array_equal(host(t), np.any(np.stack(xs), axis=0))
    t = T(xs[RANK])
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    assert np.array_equal(host(t), np.all(np.stack(xs), axis=0))
    if not NCCL:
        t = T([1.5, -2.0], dtype=dt.bfloat16) * (RANK + 1)
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        np.testing.assert_allclose(host(t.float()), np.array([1.5, -2.0]) * (WORLD + 1) / 2, rtol=1e-2)
    xs = [per_rank(r, (3, 4), "float64", seed=3) for r in range(WORLD)]
    base = T(xs[RANK])
    view = base.T
    dist.all_reduce(view)
    np.testing.assert_allclose(host(base), np.sum(np.stack(xs), axis=0))
    assert view._version > 0  # in place: version counters see it
    ok("all_reduce")


def check_broadcast():
    for src in range(WORLD):
        for dtype in ("float32", "int64", "bool", "float16"):
            xs = [per_rank(r, (2, 3), dtype, seed=4) for r in range(WORLD)]
            t = T(xs[RANK])
            dist.broadcast(t, src=src)
            assert np.array_equal(host(t), xs[src]), (src, dtype)
    ok("broadcast")


def check_all_gather():
    xs = [per_rank(r, (2, 3), "float32", seed=5) for r in range(WORLD)]
    outs = [dt.zeros(2, 3, device=DEV) for _ in range(WORLD)]
    dist.all_gather(outs, T(xs[RANK]))
    for r in range(WORLD):
        assert np.array_equal(host(outs[r]), xs[r])
    out = dt.zeros(WORLD * 2, 3, device=DEV)
    dist.all_gather_into_tensor(out, T(xs[RANK]))
    assert np.array_equal(host(out), np.concatenate(xs))
    ok("all_gather")


def check_reduce_scatter():
    for op in ("SUM", "MAX", "AVG"):
        ins = [[per_rank(10 * r + k, (4,), "float64", seed=6) for k in range(WORLD)] for r in range(WORLD)]
        out = dt.zeros(4, dtype=dt.float64, device=DEV)
        dist.reduce_scatter(out, [T(a) for a in ins[RANK]], op=op)
        want = REFS[op](np.stack([ins[r][RANK] for r in range(WORLD)]))
        np.testing.assert_allclose(host(out), want, rtol=1e-12)
        flat = [np.concatenate(ins[r]) for r in range(WORLD)]
        out = dt.zeros(4, dtype=dt.float64, device=DEV)
        dist.reduce_scatter_tensor(out, T(flat[RANK]), op=getattr(dist.ReduceOp, op))
        np.testing.assert_allclose(host(out), want, rtol=1e-12)
    ok("reduce_scatter")


def check_async():
    xs = [per_rank(r, (1000,), "float32", seed=7) for r in range(WORLD)]
    ts = [T(xs[RANK]) * (k + 1) for k in range(3)]
    works = [dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True) for t in ts]
    assert all(isinstance(w, dist.Work) for w in works)
    bw = dist.broadcast(b := T(xs[RANK]), src=WORLD - 1, async_op=True)
    for w in reversed(works):  # any order
        assert w.wait() is True and w.is_completed()
    bw.wait()
    for k, t in enumerate(ts):
        np.testing.assert_allclose(host(t), np.sum(np.stack(xs), axis=0) * (k + 1), rtol=1e-5, atol=1e-5)
    assert np.array_equal(host(b), xs[-1])
    w = dist.all_reduce(t := T(xs[RANK]), op=dist.ReduceOp.AVG, async_op=True)
    while not w.is_completed():
        pass
    np.testing.assert_allclose(host(t), np.mean(np.stack(xs), axis=0), rtol=1e-5, atol=1e-6)
    assert w.result()[0] is t
    dist.barrier(async_op=True).wait()
    dist.barrier()
    ok("async_handles")


def check_mismatch_errors():
    ones = lambda dtype=dt.float32, n=2: dt.ones(n, dtype=dtype, device=DEV)  # noqa: E731
    cross_rank = ((lambda: dist.all_reduce(ones(n=2 + RANK)), "float32[3]"),
                  (lambda: dist.all_reduce(ones(), op="max" if RANK else "sum"), "op=MAX"),
                  (lambda: dist.broadcast(ones(), 0) if RANK else dist.all_reduce(ones()), "broadcast"),
                  (lambda: dist.all_reduce(ones(dt.float64 if RANK else dt.float32)), "float64"))
    for call, want in cross_rank if WORLD > 1 else ():  # one process has nothing to mismatch with
        try:
            call()
        except RuntimeError as e:
            msg = str(e)
            assert "rank 1" in msg and want in msg and "rank 0 called" in msg, msg
        else:
            raise AssertionError(f"no error for a mismatch ({want})")
    try:
        dist.all_gather([dt.zeros(2, device=DEV)] * (WORLD + 1), dt.zeros(2, device=DEV))
    except ValueError as e:
        assert "one tensor per rank" in str(e), str(e)
    else:
        raise AssertionError("all_gather with a short tensor_list did not raise")
    try:
        dist.broadcast(dt.zeros(1, device=DEV), src=WORLD)
    except ValueError as e:
        assert "src" in str(e)
    else:
        raise AssertionError("a bad src did not raise")
    if not NCCL:
        try:
            dist.all_reduce(dt.ones(2, dtype=dt.int32), op=dist.ReduceOp.AVG)
        except TypeError as e:
            assert "AVG" in str(e)
        else:
            raise AssertionError("AVG of integers did not raise")
    ok("mismatch_errors")


def check_nccl_no_host_copies():
    """The NCCL adapter hands NCCL device pointers: it never brings a tensor to the host."""
    cp = sys.modules["cupy"]
    saved = cp.asnumpy, cp.ndarray.get

    def forbidden(*a, **k):
        raise AssertionError("the NCCL path copied device data to the host")

    cp.asnumpy, cp.ndarray.get = forbidden, forbidden
    calls = fakenccl.CALLS[:]
    try:
        t = T([1.0, 2.0])
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        dist.broadcast(t, src=0)
        outs = [dt.zeros(2, device=DEV) for _ in range(WORLD)]
        dist.all_gather(outs, t)
    finally:
        cp.asnumpy, cp.ndarray.get = saved
    made = fakenccl.CALLS[len(calls):]
    assert [c[0] for c in made] == ["allReduce", "broadcast", "allGather"], made
    assert all(isinstance(c[1], int) and c[1] > 0 for c in made), made  # device pointers, as ints
    ok("nccl_device_pointers_only")


def check_ddp_on_cuda():
    """DDP's buckets on cuda tensors go through the NCCL transport (elementwise model: no matmul kernel)."""
    from devtensor import nn
    from devtensor.nn.parallel import DistributedDataParallel as DDP

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(dt.full((4,), 1.0 + RANK, dtype=dt.float64))
            self.b = nn.Parameter(dt.zeros(4, dtype=dt.float64))

        def forward(self, x):
            return (x * self.w + self.b) ** 2

    net = Scale().to(DEV)
    ddp = DDP(net)
    assert np.array_equal(host(net.w.detach()), np.ones(4))  # rank 0's
    before = PG.counts.get("ddp_all_reduce", 0)
    xs = [per_rank(r, (4,), "float64", seed=8) for r in range(WORLD)]
    ddp(T(xs[RANK])).sum().backward()
    assert PG.counts.get("ddp_all_reduce", 0) - before == (ddp.bucket_count if WORLD > 1 else 0)  # 1 rank: none
    assert PG._nccl is not None and ddp._reducer.buckets[0].transport is PG._nccl
    want = np.mean([2 * x * x for x in xs], axis=0)  # d/dw (x w)^2 at w = 1
    np.testing.assert_allclose(host(net.w.grad), want, rtol=1e-12)
    ok("ddp_over_nccl")


CHECKS = [check_all_reduce, check_broadcast, check_all_gather, check_reduce_scatter, check_async,
          check_mismatch_errors]
if FAKE:
    CHECKS += [check_nccl_no_host_copies]
if NCCL:
    CHECKS += [check_ddp_on_cuda]

if __name__ == "__main__":
    for check in CHECKS:
        check()
    dist.destroy_process_group()
    ok("destroyed")
