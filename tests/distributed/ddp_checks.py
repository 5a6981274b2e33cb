"""DistributedDataParallel checks, run on every rank by tests/test_distributed.py:

    mpiexec -n 2 python -m mpi4py tests/distributed/ddp_checks.py

Each rank trains on its half of a float64 batch; every rank also trains a plain copy of the model
on the whole batch (no communication), the single-process reference. Prints "OK <name>" per check
on rank 0; any failure raises (and -m mpi4py ends the job non-zero)."""
from __future__ import annotations

import numpy as np

import devtensor as dt
import devtensor.distributed as dist
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.nn.parallel import DistributedDataParallel as DDP
from devtensor.nn.parallel import consume_prefix_in_state_dict_if_present

dist.init_process_group("mpi")
RANK, WORLD = dist.get_rank(), dist.get_world_size()
PG = dist.api._state["pg"]


def ok(name):
    if RANK == 0:
        print("OK", name, flush=True)


class MLP(nn.Module):
    def __init__(self, sizes=(6, 16, 12, 3)):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.tanh()
        return x


def make_model(seed):
    dt.manual_seed(seed + 100 * RANK)  # different on each rank: DDP must broadcast rank 0's
    return MLP().double()


def data(step, n=8):
    g = np.random.default_rng(1000 + step)  # the same global batch on every rank
    x = g.standard_normal((n * WORLD, 6))
    y = g.integers(0, 3, n * WORLD)
    return dt.tensor(x, dtype=dt.float64), dt.tensor(y)


def shard(t):
    n = t.shape[0] // WORLD
    return t[RANK * n:(RANK + 1) * n]


def flat(model):
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])


def assert_ranks_bitwise_equal(model, what):
    mine = flat(model)
    every = [dt.zeros(mine.size, dtype=dt.float64) for _ in range(WORLD)]
    dist.all_gather(every, dt.tensor(mine, dtype=dt.float64))
    for r, other in enumerate(every):
        assert other.numpy().tobytes() == mine.tobytes(), f"{what}: rank {r}'s weights differ from rank {RANK}'s"


def assert_close(a, b, what, rtol=1e-9):
    err = np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))
    assert err <= rtol, f"{what}: max relative difference {err:.3g} > {rtol}"


def reference_copy(ddp):
    ref = MLP().double()
    ref.load_state_dict(ddp.module.state_dict())
    return ref


# ---- SGD with momentum: N steps, weights equal across ranks and to one process on the whole batch ----
def check_sgd(steps=6):
    ddp = DDP(make_model(1))
    ref = reference_copy(ddp)
    opt = dt.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    ropt = dt.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        x, y = data(step)
        opt.zero_grad()
        F.cross_entropy(ddp(shard(x)), shard(y)).backward()
        opt.step()
        ropt.zero_grad()
        F.cross_entropy(ref(x), y).backward()
        ropt.step()
    assert_ranks_bitwise_equal(ddp.module, "SGD")
    assert_close(flat(ddp.module), flat(ref), "SGD vs one process")
    ok("sgd_momentum_parity")


# ---- Adam with no_sync() gradient accumulation -----------------------------------------------------
def check_adam_no_sync(steps=3, accumulate=3):
    ddp = DDP(make_model(2), bucket_cap_mb=0.0005)  # several buckets
    ref = reference_copy(ddp)
    opt = dt.optim.Adam(ddp.parameters(), lr=1e-2)
    ropt = dt.optim.Adam(ref.parameters(), lr=1e-2)
    before = PG.counts.get("ddp_all_reduce", 0)
    for step in range(steps):
        opt.zero_grad()
        ropt.zero_grad()
        for micro in range(accumulate):
            x, y = data(10 * step + micro)
            if micro < accumulate - 1:
                with ddp.no_sync():
                    F.cross_entropy(ddp(shard(x)), shard(y)).backward()
            else:
                F.cross_entropy(ddp(shard(x)), shard(y)).backward()
            F.cross_entropy(ref(x), y).backward()
        opt.step()
        ropt.step()
    # only the last micro-batch of each step communicated, one all-reduce per bucket
    assert PG.counts["ddp_all_reduce"] - before == steps * ddp.bucket_count, PG.counts
    assert_ranks_bitwise_equal(ddp.module, "Adam + no_sync")
    assert_close(flat(ddp.module), flat(ref), "Adam + no_sync vs one process")
    ok("adam_no_sync_parity")


# ---- buckets: one all-reduce per bucket per step, started while backward still runs --------------------
def check_buckets():
    model = make_model(3)
    ddp = DDP(model, bucket_cap_mb=0.0005)  # 500 bytes: several buckets on this small MLP
    n_params = len(list(model.parameters()))
    assert 1 < ddp.bucket_count <= n_params, ddp.bucket_count
    first = ddp._reducer.buckets[0]
    # reverse registration order: the first bucket holds the last layer's parameters
    assert first.params[0][1] is list(model.parameters())[-1]
    ddp.events = []
    before = PG.counts.get("ddp_all_reduce", 0)
    x, y = data(0)
    F.cross_entropy(ddp(shard(x)), shard(y)).backward()
    assert PG.counts["ddp_all_reduce"] - before == ddp.bucket_count
    ev = ddp.events
    launches = [i for i, e in enumerate(ev) if e[0] == "launch"]
    readies = [i for i, e in enumerate(ev) if e[0] == "ready"]
    assert len(launches) == ddp.bucket_count and len(readies) == n_params, ev
    assert [ev[i][1] for i in launches] == list(range(ddp.bucket_count)), ev  # in bucket order
    # overlap: bucket 0's all-reduce started before backward produced the first layer's gradients
    assert launches[0] < readies[-1], ev
    first_layer = {0, 1}  # layers.0.weight, layers.0.bias
    assert all(ev[i][1] in first_layer for i in readies[-2:]), ev
    ok("buckets_overlap_backward")


# ---- unused parameters --------------------------------------------------------------------------------
class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 4)
        self.used = nn.Linear(4, 3)
        self.unused = nn.Linear(4, 3)

    def forward(self, x):
        return self.used(self.body(x).tanh())


def check_unused_parameters():
    dt.manual_seed(5)
    ddp = DDP(TwoHeads().double(), find_unused_parameters=True)
    ref = TwoHeads().double()
    ref.load_state_dict(ddp.module.state_dict())
    x, y = data(3)
    F.cross_entropy(ddp(shard(x)), shard(y)).backward()
    F.cross_entropy(ref(x), y).backward()
    for (name, p), q in zip(ddp.module.named_parameters(), ref.parameters()):
        if name.startswith("unused"):
            assert p.grad is None, f"{name} got a gradient although no rank used it"
        else:
            assert_close(p.grad.numpy(), q.grad.numpy(), f"grad of {name}")
    ok("find_unused_parameters")

    dt.manual_seed(5)
    strict = DDP(TwoHeads().double())
    F.cross_entropy(strict(shard(x)), shard(y)).backward()
    try:
        strict(shard(x))
    except RuntimeError as e:
        msg = str(e)
        assert "find_unused_parameters=True" in msg and "unused.weight" in msg, msg
    else:
        raise AssertionError("a parameter without gradient did not raise at the next forward")
    for b in strict._reducer.buckets:  # the launched buckets are matched on every rank: finish them
        if b.work is not None:
            b.work.wait()
    ok("unused_parameter_error")


# ---- state_dict, buffers, sampler, errors -------------------------------------------------------------
def check_state_dict_and_buffers():
    dt.manual_seed(7 + RANK)
    net = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).double()
    ddp = DDP(net)
    sd = ddp.state_dict()
    assert all(k.startswith("module.") for k in sd), list(sd)
    bare = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).double()
    consume_prefix_in_state_dict_if_present(sd, "module.")
    bare.load_state_dict(sd)
    assert np.array_equal(flat(bare), flat(net))
    # buffers follow rank 0 (broadcast_buffers): each forward starts from rank 0's running statistics
    seen = []
    net[1].register_forward_pre_hook(lambda m, args: seen.append(m.running_mean.numpy().copy()))
    x, _ = data(4)
    for k in range(2):
        ddp(shard(x) * (RANK + 1))  # different data: the ranks' statistics drift apart after each forward
    every = [dt.zeros(4, dtype=dt.float64) for _ in range(WORLD)]
    dist.all_gather(every, dt.tensor(seen[-1], dtype=dt.float64))
    assert np.abs(seen[-1]).sum() > 0 and all(np.array_equal(e.numpy(), every[0].numpy()) for e in every), \
        "BatchNorm buffers were not taken from rank 0 at the forward"
    ok("state_dict_and_buffers")


def check_sampler():
    from devtensor.utils.data import DataLoader, TensorDataset
    from devtensor.utils.data.distributed import DistributedSampler

    ds = TensorDataset(dt.arange(11.0))
    sampler = DistributedSampler(ds)  # rank and replicas from the process group
    assert (sampler.rank, sampler.num_replicas) == (RANK, WORLD)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        mine = [int(v) for (b,) in DataLoader(ds, batch_size=4, sampler=sampler) for v in b.tolist()]
        every = [dt.zeros(len(mine), dtype=dt.int64) for _ in range(WORLD)]
        dist.all_gather(every, dt.tensor(mine, dtype=dt.int64))
        seen = sorted(v for e in every for v in e.tolist())
        assert set(seen) == set(range(11)) and len(seen) == WORLD * len(mine), seen  # all, padded to equal
    ok("distributed_sampler")


def check_model_mismatch_error():
    dt.manual_seed(0)
    net = nn.Linear(6, 3 + RANK)
    try:
        DDP(net)
    except RuntimeError as e:
        assert "rank 1" in str(e) and "DistributedDataParallel" in str(e), str(e)
    else:
        raise AssertionError("different models on the ranks did not raise")
    ok("model_mismatch_error")


def check_fit():
    import io
    import sys

    dt.manual_seed(11)
    net = MLP((6, 8, 3)).double()
    model = dt.fit.Model(DDP(net))
    model.compile(optimizer=dt.optim.SGD(net.parameters(), lr=0.1), loss="cross_entropy", metrics=["accuracy"])
    x, y = data(7, n=20)
    err, sys.stderr = sys.stderr, io.StringIO()
    try:
        hist = model.fit(x, y, batch_size=8, epochs=2, verbose=2, validation_data=(x, y))
        printed = sys.stderr.getvalue()
    finally:
        sys.stderr = err
    assert (printed.count("Epoch 1/2") == 1) == (RANK == 0), printed  # only rank 0 prints
    logs = dt.tensor([v for k in sorted(hist.history) for v in hist.history[k]], dtype=dt.float64)
    every = [dt.zeros(logs.shape[0], dtype=dt.float64) for _ in range(WORLD)]
    dist.all_gather(every, logs)
    assert all(np.array_equal(e.numpy(), logs.numpy()) for e in every), "fit's metrics differ across ranks"
    assert_ranks_bitwise_equal(net, "fit")
    # evaluate over the ranks' shares = evaluate of the whole data in one process
    full = dt.fit.Model(MLP((6, 8, 3)).double())
    full.module.load_state_dict(net.state_dict())
    full.compile(optimizer="sgd", loss="cross_entropy", metrics=["accuracy"])
    a, b = model.evaluate(x, y, verbose=0), full.evaluate(x, y, verbose=0)
    assert abs(a["loss"] - b["loss"]) <= 1e-9 * abs(b["loss"]) and a["accuracy"] == b["accuracy"], (a, b)
    ok("fit_model")


CHECKS = [check_sgd, check_adam_no_sync, check_buckets, check_state_dict_and_buffers, check_sampler,
          check_model_mismatch_error, check_unused_parameters, check_fit]

if __name__ == "__main__":
    import sys

    wanted = sys.argv[1:]
    for check in CHECKS:
        if not wanted or check.__name__ in wanted:
            check()
    dist.destroy_process_group()
