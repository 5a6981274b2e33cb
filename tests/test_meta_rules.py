"""The ops' meta rules (OpDef.meta) against what the cpu kernels really return, and the meta
device built from them: same shapes and dtypes for every sample of every op, no data needed."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor.dispatch import OPS, call

WITH_SAMPLES = sorted(n for n, op in OPS.items() if op.samples is not None)


def _to(x, device):
    if isinstance(x, np.ndarray):
        return dt.tensor(x, device="cpu").to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to(v, device) for v in x)
    return x


def _specs(out):
    outs = out if isinstance(out, tuple) else (out,)
    return [(tuple(o.shape), o.dtype) for o in outs]


def test_every_op_has_a_meta_rule():
    missing = sorted(n for n, op in OPS.items() if op.meta is None and op.composite is None)
    assert not missing, f"ops without a meta rule: {missing}"


@pytest.mark.parametrize("name", WITH_SAMPLES)
def test_meta_rule_matches_the_cpu_kernel(name):
    op = OPS[name]
    for i, (args, kwargs) in enumerate(op.samples(np.float32)):
        cpu = call(op, _to(args, "cpu"), dict(kwargs))
        meta = call(op, _to(args, "meta"), dict(kwargs))
        assert _specs(meta) == _specs(cpu), f"{name} sample {i}"


def test_meta_device_answers_huge_shapes_without_data():
    import devtensor.nn.functional as F

    a = dt.empty(100000, 200000, device="meta", requires_grad=True)
    y = a @ dt.empty(200000, 300000, device="meta")
    x = dt.empty(100000, 3, 1000, 1000, device="meta", requires_grad=True)
    w = dt.empty(64, 3, 3, 3, device="meta", requires_grad=True)
    q = F.avg_pool2d(F.max_pool2d(F.conv2d(x, w, padding=1), 2), 2)
    logits = dt.empty(1000000, 100000, device="meta", requires_grad=True)
    loss = F.cross_entropy(logits, dt.empty(1000000, dtype=dt.int64, device="meta"))
    assert tuple(y.shape) == (100000, 300000) and tuple(q.shape) == (100000, 64, 250, 250)
    (loss + q.sum() + y.sum()).backward()
    assert tuple(a.grad.shape) == (100000, 200000) and a.grad.device.type == "meta"
    assert tuple(x.grad.shape) == tuple(x.shape) and tuple(w.grad.shape) == (64, 3, 3, 3)
    assert tuple(logits.grad.shape) == (1000000, 100000)


def _bad_calls():
    import devtensor.nn.functional as F

    return [
        ("matmul", lambda d: dt.zeros(3, 4, device=d) @ dt.zeros(5, 6, device=d)),
        ("add", lambda d: dt.zeros(3, 4, device=d) + dt.zeros(5, 4, device=d)),
        ("conv2d", lambda d: F.conv2d(dt.zeros(1, 3, 8, 8, device=d), dt.zeros(4, 2, 3, 3, device=d))),
        ("conv2d", lambda d: F.conv2d(dt.zeros(1, 3, 8, 8, device=d), dt.zeros(4, 3, 3, 3, device=d), padding=-1)),
        ("conv2d", lambda d: F.conv2d(dt.zeros(1, 3, 8, 8, device=d), dt.zeros(4, 3, 3, 3, device=d),
                                      dt.zeros(5, device=d))),
        ("max_pool2d", lambda d: F.max_pool2d(dt.zeros(1, 3, 4, 4, device=d), 9)),
        ("avg_pool2d", lambda d: F.avg_pool2d(dt.zeros(1, 3, 4, 4, device=d), 0)),
        ("cross_entropy", lambda d: F.cross_entropy(dt.zeros(4, 3, device=d), dt.zeros(5, dtype=dt.int64, device=d))),
        ("cat", lambda d: dt.cat([dt.zeros(2, 3, device=d), dt.zeros(2, 4, device=d)])),
        ("reshape", lambda d: dt.zeros(2, 3, device=d).reshape(4, 2)),
        ("gather", lambda d: dt.zeros(2, 3, device=d).gather(1, dt.zeros(3, 3, dtype=dt.int64, device=d))),
    ]


@pytest.mark.parametrize("i", range(11))
def test_meta_raises_what_cpu_raises(i):
    name, fn = _bad_calls()[i]
    errs = {}
    for d in ("cpu", "meta"):
        with pytest.raises(Exception) as e:
            fn(d)
        errs[d] = (type(e.value), str(e.value).split(" [arguments")[0])
    assert errs["cpu"] == errs["meta"]
    assert errs["cpu"][1].startswith(name) or name in errs["cpu"][1]
