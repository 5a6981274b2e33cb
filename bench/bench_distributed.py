"""devtensor.distributed on MPI: all_reduce bandwidth against mpi4py, and DDP training throughput.

    python bench/bench_distributed.py [--quick] [--json FILE]

It starts the MPI jobs itself (the mpiexec next to this python, from `pip install 'devtensor[mpi]'`):
  1. all_reduce, 2 ranks: a 25 MiB float32 tensor (6,553,600 elements), SUM. In one job, rounds
     alternate (in rotating order) between mpi4py's comm.Allreduce(MPI.IN_PLACE, buf) on a numpy
     buffer and devtensor's dist.all_reduce(t) on a tensor over that same buffer, each on its own
     duplicate of COMM_WORLD; and the same non-blocking (Iallreduce().Wait() against
     all_reduce(async_op=True).wait(): MPICH runs another algorithm for those). The median time of
     each is reported with its algorithm bandwidth (bytes / time) and its ratio to mpi4py's same
     form (target >= 0.9x).
  2. DDP, MLP 784-128-10 (Adam, batch 100 per rank, float32, random MNIST-shaped data): samples/s
     per rank on 1 rank and on 2 ranks, each rank pinned to its own core with one compute thread
     (os.sched_setaffinity; OPENBLAS_NUM_THREADS=1, NUMBA_NUM_THREADS=1), against a plain (not
     DDP) model on 1 rank: the 2-rank row's ratio is the scaling efficiency; 2 ranks of plain
     models (no communication) show what the machine gives two processes, and the same with a
     barrier per step what it costs two ranks to stay in step there. "Exposed comm" is the
     time per step from the last gradient produced to the averaged gradients being in place (what
     backward waits for communication); "comm alone" is the same all-reduces run by themselves;
     hidden = 1 - exposed / alone. The models of one rank count train in the same job, taking turns
     round by round (median of 6 rounds of 300 steps); the best of 3 such jobs is reported.
On a 2-core machine two ranks share the cores with everything else, so these figures mostly show
the overheads (a rank waiting for the other is time lost), not what a cluster would see.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_ELEMS = 25 * 1024 * 1024 // 4


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


# ---- workers (run under mpiexec) ----------------------------------------------------------------------
def worker_allreduce(reps):
    import numpy as np
    from mpi4py import MPI

    import devtensor as dt
    import devtensor.distributed as dist

    dist.init_process_group("mpi")
    comm = MPI.COMM_WORLD.Dup()
    buf = np.full(N_ELEMS, 1e-30, dtype=np.float32)  # doubles each call: stays finite for 100+ calls
    t = dt.from_numpy(buf)  # the same memory
    times = {"mpi4py": [], "mpi4py_async": [], "devtensor": [], "devtensor_async": []}

    def mpi4py():
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def mpi4py_async():
        comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM).Wait()

    def devtensor():
        dist.all_reduce(t)

    def devtensor_async():
        dist.all_reduce(t, async_op=True).wait()

    fns = [("mpi4py", mpi4py), ("mpi4py_async", mpi4py_async), ("devtensor", devtensor),
           ("devtensor_async", devtensor_async)]
    for _, fn in fns:  # warm-up
        fn()
    for rep in range(reps):
        k = rep % len(fns)
        for name, fn in fns[k:] + fns[:k]:  # rotated: no variant always runs first
            buf[:] = 1e-30
            comm.Barrier()
            t0 = time.perf_counter()
            fn()
            dt_ = time.perf_counter() - t0
            times[name].append(comm.allreduce(dt_, op=MPI.MAX))  # the slower rank's time
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps({k: statistics.median(v) for k, v in times.items()}), flush=True)
    comm.Free()
    dist.destroy_process_group()


def _pin_one_core():
    """One core per rank and one compute thread: before numpy / numba / devtensor load."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["NUMBA_NUM_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[rank % len(cores)]})


def worker_ddp(steps, rounds, modes):
    """Train one model per mode in this job, the modes taking turns round by round (so that a busy
    phase of the machine hits all of them): "plain" (no DDP), "barrier" (plain + one barrier per
    step), "ddp". Prints the median samples/s per rank of each."""
    _pin_one_core()
    import numpy as np

    import devtensor as dt
    import devtensor.distributed as dist
    import devtensor.nn.functional as F
    from devtensor import nn
    from devtensor.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    pg = dist.api._state["pg"]
    g = np.random.default_rng(rank)
    batches = [(dt.tensor(g.random((100, 784), dtype=np.float32)), dt.tensor(g.integers(0, 10, 100)))
               for _ in range(16)]
    runs = {}
    for mode in modes:
        dt.manual_seed(0)
        net = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        runs[mode] = (DDP(net) if mode == "ddp" else net, dt.optim.Adam(net.parameters(), lr=1e-3))

    def step(mode, i):
        model, opt = runs[mode]
        x, y = batches[i % len(batches)]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        if mode == "barrier":  # plain models that wait for each other once per step, as DDP's ranks do
            pg.comm.Barrier()
        opt.step()

    for mode in modes:
        for i in range(30):  # warm-up: numba compiles the fused kernels here
            step(mode, i)
    rates = {mode: [] for mode in modes}
    for r in range(rounds):
        k = r % len(modes)
        for mode in modes[k:] + modes[:k]:
            pg.comm.Barrier()
            t0 = time.perf_counter()
            for i in range(steps):
                step(mode, i)
            el = pg.comm.allreduce(time.perf_counter() - t0, op=pg.MPI.MAX)
            rates[mode].append(steps * 100 / el)
    out = {mode: {"samples_per_s_per_rank": statistics.median(v)} for mode, v in rates.items()}
    if "ddp" in modes and world > 1:  # (one rank: DDP does not communicate)
        # where the time goes in backward: record DDP's events for a few steps
        model = runs["ddp"][0]
        exposed = []
        model.events = []
        for i in range(steps // 2):
            model.events.clear()
            step("ddp", i)
            ev = model.events
            last_ready = max(t for k, _, t in ev if k == "ready")
            end = next(t for k, _, t in ev if k == "end")
            exposed.append(end - last_ready)
        model.events = None
        bufs = [b.buffer.copy() for b in model._reducer.buckets]
        alone = []
        for _ in range(steps // 2):
            pg.comm.Barrier()
            t0 = time.perf_counter()
            for b in bufs:
                pg.mpi.allreduce(b, "SUM", False)
                b /= world
            alone.append(time.perf_counter() - t0)
        out["ddp"].update(exposed_ms=1e3 * statistics.median(exposed), alone_ms=1e3 * statistics.median(alone),
                          buckets=len(bufs))
    if rank == 0:
        print("RESULT " + json.dumps(out), flush=True)
    dist.destroy_process_group()


# ---- the driver -------------------------------------------------------------------------------------
def run_job(n, *args, timeout=900):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [_mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", str(Path(__file__).resolve()), "--worker", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    p.add_argument("--json", default=None, help="also write the raw results to this file")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "allreduce":
            return worker_allreduce(int(rest[0]))
        return worker_ddp(int(rest[0]), int(rest[1]), rest[2].split(","))
    if _mpiexec() is None:
        raise SystemExit("bench_distributed: no mpiexec; pip install 'devtensor[mpi]'")
    reps, steps, rounds, jobs = (8, 60, 2, 1) if args.quick else (60, 300, 6, 3)

    ar = run_job(2, "allreduce", str(reps))
    mb = N_ELEMS * 4 / 2**20
    print(f"all_reduce of a {mb:.0f} MiB float32 tensor, 2 ranks, SUM (median of {reps}, the slower rank's time)\n")
    print("| implementation | time | algorithm bandwidth | vs mpi4py (blocking / non-blocking) |")
    print("| --- | ---: | ---: | ---: |")
    for name, ref, label in (("mpi4py", "mpi4py", "mpi4py comm.Allreduce(IN_PLACE) on the numpy buffer"),
                             ("devtensor", "mpi4py", "devtensor dist.all_reduce(t)"),
                             ("mpi4py_async", "mpi4py_async", "mpi4py comm.Iallreduce(IN_PLACE).Wait()"),
                             ("devtensor_async", "mpi4py_async", "devtensor dist.all_reduce(t, async_op=True).wait()")):
        t = ar[name]
        print(f"| {label} | {t * 1e3:.2f} ms | {N_ELEMS * 4 / t / 1e9:.2f} GB/s | {ar[ref] / t:.2f}x |")

    configs = [("1 rank, plain model (no DDP)", 1, "plain"), ("1 rank, DDP (no communication)", 1, "ddp"),
               ("2 ranks, plain models (no DDP: what the machine gives two processes)", 2, "plain"),
               ("2 ranks, plain models + one barrier per step (the cost of keeping in step)", 2, "barrier"),
               ("2 ranks, DDP", 2, "ddp")]
    best = {}
    for _ in range(jobs):
        for n in (1, 2):
            modes = [mode for _, k, mode in configs if k == n]
            res = run_job(n, "ddp", str(steps), str(rounds), ",".join(modes))
            for label, k, mode in configs:
                r = res.get(mode) if k == n else None
                if r and (label not in best or r["samples_per_s_per_rank"] > best[label]["samples_per_s_per_rank"]):
                    best[label] = r
    print(f"\nMLP 784-128-10, Adam, batch 100 per rank, float32; each rank pinned to one core with one compute "
          f"thread (the runs of one rank count take turns in one job: median of {rounds} rounds of {steps} "
          f"steps; best of {jobs} jobs)\n")
    print("| run | samples/s per rank | vs 1 rank without DDP | exposed comm / step | comm alone / step | hidden |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base = best[configs[0][0]]["samples_per_s_per_rank"]
    for label, _, _ in configs:
        r = best[label]
        cells = ["", "", ""]
        if "exposed_ms" in r:
            label += f" ({r['buckets']} bucket{'s' if r['buckets'] > 1 else ''})"
            hidden = max(0.0, 1 - r["exposed_ms"] / r["alone_ms"]) if r["alone_ms"] > 0 else 0.0
            cells = [f"{r['exposed_ms']:.3f} ms", f"{r['alone_ms']:.3f} ms", f"{hidden:.0%}"]
        print(f"| {label} | {r['samples_per_s_per_rank']:,.0f} | {r['samples_per_s_per_rank'] / base:.2f} | "
              + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"all_reduce": ar, "ddp": best}, indent=1))


if __name__ == "__main__":
    main()
