"""devtensor.distributed, DistributedDataParallel, DistributedSampler and `devtensor launch`.

The multi-rank checks run as real MPI jobs of 2 ranks on this machine (mpiexec -n 2 python -m mpi4py
tests/distributed/<script>.py), each under a timeout; each script prints "OK <check>" on rank 0 per
check that passed. Without mpi4py or mpiexec (pip install 'devtensor[mpi]') they skip, saying so;
ci/test.sh installs that extra, so CI runs them. The NCCL adapter runs over a stand-in CuPy + NCCL
(tests/distributed/fakenccl.py); on a GPU machine, test_nccl_on_a_gpu runs the same checks on
real NCCL with one process."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import devtensor as dt
import devtensor.distributed as dist
from devtensor.utils.data.distributed import DistributedSampler

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "distributed"


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _why_no_mpi():
    if not dist.is_mpi_available():
        return "mpi4py is not installed (pip install 'devtensor[mpi]'; ci/test.sh installs it)"
    if _mpiexec() is None:
        return "no mpiexec next to python or on PATH (pip install 'devtensor[mpi]' brings MPICH's)"
    return None


needs_mpi = pytest.mark.skipif(_why_no_mpi() is not None, reason=str(_why_no_mpi()))


def _env():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    env["OPENBLAS_NUM_THREADS"] = "1"  # 2 ranks on a 2-core machine: no oversubscription
    return env


def mpirun(script, *args, n=2, runner=("-m", "mpi4py"), timeout=120):
    """Run an MPI job; past `timeout` seconds the whole job (mpiexec and every rank) is killed and
    the test fails, so a hang never outlives its test."""
    cmd = [_mpiexec(), "-n", str(n), sys.executable, *runner, str(SCRIPTS / script), *args]
    return _run_job(cmd, timeout)


def _run_job(cmd, timeout):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, cwd=str(ROOT), env=_env(), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s (killed):\n{out}\n{err}")
    r = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    r.elapsed = time.monotonic() - start
    return r


def passed(r):
    return {line[3:].strip() for line in r.stdout.splitlines() if line.startswith("OK ")}


# ---- without MPI --------------------------------------------------------------------------------------
def test_everything_before_init_process_group_says_to_call_it():
    assert not dist.is_initialized()
    for call in (lambda: dist.all_reduce(dt.ones(2)), lambda: dist.get_rank(), lambda: dist.get_world_size(),
                 lambda: dist.broadcast(dt.ones(2), 0), lambda: dist.barrier(),
                 lambda: dt.nn.parallel.DistributedDataParallel(dt.nn.Linear(2, 2)),
                 lambda: DistributedSampler(range(4))):
        with pytest.raises(ValueError, match="init_process_group"):
            call()


def test_init_errors_are_clear(monkeypatch):
    with pytest.raises(ValueError, match="devtensor has no gloo"):
        dist.init_process_group("gloo")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if it were not installed
    with pytest.raises(RuntimeError, match=r"pip install 'devtensor\[mpi\]'"):
        dist.init_process_group("mpi")
    assert not dist.is_initialized()


@pytest.mark.parametrize("n", [1, 10, 11, 13])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_covers_the_dataset_once_per_epoch(n, replicas, drop_last):
    shares = {}
    for epoch in range(3):
        got = []
        for rank in range(replicas):
            s = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=True, seed=3,
                                   drop_last=drop_last)
            s.set_epoch(epoch)
            idx = list(s)
            assert len(idx) == len(s)
            got.append(idx)
        assert len({len(g) for g in got}) == 1  # every rank runs the same number of steps
        flat = [i for g in got for i in g]
        if drop_last:
            assert len(flat) == len(set(flat)) == (n // replicas) * replicas  # disjoint, the tail dropped
        else:
            assert set(flat) == set(range(n)) and len(flat) == -(-n // replicas) * replicas  # all, padded
            assert len(flat) - len(set(flat)) < replicas
        shares[epoch] = got
    if n > 2 and replicas < n:
        assert shares[0] != shares[1]  # set_epoch reshuffles
    again = DistributedSampler(range(n), num_replicas=replicas, rank=0, seed=3, drop_last=drop_last)
    again.set_epoch(2)
    assert list(again) == shares[2][0]  # the same seed and epoch give the same order


def test_distributed_sampler_matches_pytorch_without_shuffle():
    torch_sampler = pytest.importorskip("torch.utils.data.distributed").DistributedSampler
    for n, replicas, drop_last in [(10, 3, False), (10, 3, True), (11, 4, False), (2, 3, False)]:
        for rank in range(replicas):
            ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
            theirs = torch_sampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)


def test_consume_prefix_loads_a_ddp_checkpoint_into_the_bare_model():
    from devtensor.nn.parallel import consume_prefix_in_state_dict_if_present

    net = dt.nn.Linear(3, 2)
    sd = {"module." + k: v for k, v in net.state_dict().items()}
    consume_prefix_in_state_dict_if_present(sd, "module.")
    assert sorted(sd) == ["bias", "weight"]
    dt.nn.Linear(3, 2).load_state_dict(sd)


def test_launch_builds_the_mpiexec_command(tmp_path):
    from devtensor.cli import build_parser
    from devtensor.cli.launch import command

    script = tmp_path / "train.py"
    script.write_text("")
    args = build_parser().parse_args(["launch", "-n", "4", str(script), "--epochs", "3", "-v"])
    cmd = command(args)
    assert cmd[1:3] == ["-n", "4"] and Path(cmd[0]).name == "mpiexec"
    assert cmd[3:] == [sys.executable, "-m", "mpi4py", str(script), "--epochs", "3", "-v"]


# ---- MPI jobs of 2 ranks ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ddp_job():
    if _why_no_mpi() is not None:
        pytest.skip(_why_no_mpi())
    return mpirun("ddp_checks.py")


@needs_mpi
def test_collectives_against_numpy():
    r = mpirun("collective_checks.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert {"all_reduce", "broadcast", "all_gather", "reduce_scatter", "async_handles", "mismatch_errors",
            "destroyed"} <= passed(r), r.stdout + r.stderr


@needs_mpi
def test_nccl_adapter_on_a_stand_in_cupy():
    r = mpirun("collective_checks.py", "--fake-nccl")
    assert r.returncode == 0, r.stdout + r.stderr
    assert {"all_reduce", "broadcast", "all_gather", "reduce_scatter", "async_handles", "mismatch_errors",
            "nccl_device_pointers_only", "ddp_over_nccl"} <= passed(r), r.stdout + r.stderr


@needs_mpi
@pytest.mark.parametrize("check", ["sgd_momentum_parity", "adam_no_sync_parity", "buckets_overlap_backward",
                                   "state_dict_and_buffers", "distributed_sampler", "model_mismatch_error",
                                   "find_unused_parameters", "unused_parameter_error", "fit_model"])
def test_ddp(ddp_job, check):
    """float64 training on 2 ranks = one process on the whole batch; see tests/distributed/ddp_checks.py."""
    assert check in passed(ddp_job), ddp_job.stdout + ddp_job.stderr


@needs_mpi
def test_ddp_job_exits_cleanly(ddp_job):
    assert ddp_job.returncode == 0, ddp_job.stdout + ddp_job.stderr


@needs_mpi
@pytest.mark.parametrize("runner", [("-m", "mpi4py"), ()], ids=["python-m-mpi4py", "plain-python"])
def test_a_rank_that_raises_ends_the_job(runner):
    r = mpirun("fail_checks.py", runner=runner, timeout=60)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "rank 1 fails on purpose" in r.stderr
    assert "rank 0 finished" not in r.stdout
    assert r.elapsed < 30, f"the job took {r.elapsed:.1f} s to end"


@needs_mpi
def test_launch_runs_the_job_and_returns_its_status():
    r = _run_job([sys.executable, "-m", "devtensor", "launch", "-n", "2", str(SCRIPTS / "fail_checks.py")], 60)
    assert r.returncode != 0 and "rank 1 fails on purpose" in r.stderr, r.stdout + r.stderr


@pytest.mark.cuda
def test_nccl_on_a_gpu():
    if _why_no_mpi() is not None:
        pytest.skip(_why_no_mpi())
    if not dist.is_nccl_available():
        pytest.skip("CuPy cannot load NCCL (libnccl.so.2)")
    r = mpirun("collective_checks.py", "--nccl", n=1)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {"all_reduce", "broadcast", "all_gather", "reduce_scatter", "async_handles",
            "ddp_over_nccl"} <= passed(r), r.stdout + r.stderr


def test_is_available_flags():
    assert dist.is_available() is True
    assert isinstance(dist.is_mpi_available(), bool) and isinstance(dist.is_nccl_available(), bool)
    assert np.array_equal([dist.ReduceOp.SUM.value, dist.ReduceOp.AVG.value], ["SUM", "AVG"])


@needs_mpi
def test_ddp_mnist_example_learns_on_two_ranks(tmp_path):
    r = mpirun(str(ROOT / "examples" / "ddp_mnist.py"), "--device", "cpu", "--epochs", "1", "--limit", "400",
               "--save", str(tmp_path / "w.safetensors"), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    acc = float(r.stdout.split("test accuracy:")[1].split()[0])
    assert acc > 0.3, r.stdout  # 7 global steps of 64 on 400 digits: well above chance (0.1)
    assert r.stdout.count("test accuracy") == 1  # rank 0 alone prints
    sd = dt.load(tmp_path / "w.safetensors")
    assert "fc2.weight" in sd and not any(k.startswith("module.") for k in sd), list(sd)  # the bare Net's keys
