"""dt.save / dt.load: round trips, checkpoints that resume training exactly, map_location, atomic
writes, and clear errors for files that are not (or no longer) devtensor checkpoints."""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy as stnp

import devtensor as dt
from devtensor.serialization import CheckpointError

DTYPES = [dt.float32, dt.float64, dt.float16, dt.bfloat16, dt.int8, dt.int16, dt.int32, dt.int64, dt.uint8,
          dt.bool]
SHAPES = [(), (0,), (3, 0, 2), (2, 3)]


def _sample(dtype, shape, seed=0):
    """Values that exercise the dtype: signs, fractions, NaN/inf for floats, both truth values."""
    rng = np.random.default_rng(seed)
    if dtype is dt.bool:
        a = rng.random(shape) > 0.5
    elif dtype.is_floating_point:
        a = rng.standard_normal(shape) * 100
        if a.size >= 3:
            a.flat[:3] = [np.nan, np.inf, -np.inf]
    else:
        info = np.iinfo(dtype.np)
        a = rng.integers(info.min, info.max, size=shape, endpoint=True)
    return dt.tensor(np.asarray(a).astype(dtype.np), dtype=dtype)


def _same_bits(a, b):
    assert a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape) and a.device == b.device
    assert a.numpy().tobytes() == b.numpy().tobytes()  # bitwise: NaN payloads and -0.0 included


def _round_trip(obj, tmp_path, **load_kw):
    p = tmp_path / "obj.safetensors"
    dt.save(obj, p)
    return dt.load(p, **load_kw)


# ---- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_every_dtype_and_shape_round_trips_bitwise(dtype, shape, tmp_path):
    t = _sample(dtype, shape)
    _same_bits(_round_trip(t, tmp_path), t)


def test_non_contiguous_tensors_round_trip(tmp_path):
    base = dt.arange(24, dtype=dt.float32).reshape(4, 6)
    views = {"T": base.T, "step": base[:, ::2], "expanded": dt.tensor([1.0, 2.0]).expand(3, 2),
             "bf16_T": base.to(dt.bfloat16).T}
    out = _round_trip(views, tmp_path)
    for k, v in views.items():
        np.testing.assert_array_equal(out[k].float().numpy(), v.float().numpy())
        assert tuple(out[k].shape) == tuple(v.shape)


def test_nested_containers_keep_types_order_and_keys(tmp_path):
    t = dt.ones(2)
    obj = OrderedDict([
        ("z", 1), ("a", [1, 2.5, "s\u00e9", None, True, (t, [t * 2])]),
        ("ints", {3: "three", -1: "minus one"}), ("keys", {(1, "a"): 1, 2.5: 2, None: 3, False: 4}),
        ("dtype", dt.bfloat16), ("device", dt.device("cpu")), ("inf", float("inf")), ("empty", ({}, [], ())),
    ])
    out = _round_trip(obj, tmp_path)
    assert type(out) is OrderedDict and list(out) == list(obj)
    assert out["a"][:5] == [1, 2.5, "s\u00e9", None, True] and type(out["a"][5]) is tuple
    np.testing.assert_array_equal(out["a"][5][1][0].numpy(), [2.0, 2.0])
    assert out["ints"] == {3: "three", -1: "minus one"}
    assert out["keys"] == {(1, "a"): 1, 2.5: 2, None: 3, False: 4}
    assert out["dtype"] is dt.bfloat16 and out["device"] == dt.device("cpu")
    assert out["inf"] == float("inf") and out["empty"] == ({}, [], ())
    assert type(_round_trip({"plain": 1}, tmp_path)) is dict


def test_the_same_tensor_twice_is_stored_once_and_loads_as_one(tmp_path):
    t = dt.randn(1000)
    out = _round_trip({"a": t, "b": [t], "c": t.clone()}, tmp_path)
    assert out["a"] is out["b"][0] and out["a"] is not out["c"]
    single = (tmp_path / "obj.safetensors").stat().st_size
    dt.save({"a": t}, tmp_path / "one")
    assert single < (tmp_path / "one").stat().st_size + 4000 + 500  # t and its clone, not three copies


def test_paths_that_collide_as_keys_keep_both_tensors(tmp_path):
    # "a.b" and {"a": {"b"}} both flatten to the safetensors key "a.b"
    out = _round_trip({"a.b": dt.tensor([1.0]), "a": {"b": dt.tensor([2.0])}}, tmp_path)
    assert out["a.b"].item() == 1.0 and out["a"]["b"].item() == 2.0


def test_requires_grad_and_parameters_are_restored(tmp_path):
    p = dt.nn.Parameter(dt.randn(3))
    x = dt.randn(2, requires_grad=True)
    out = _round_trip({"p": p, "x": x, "y": dt.randn(2)}, tmp_path)
    assert isinstance(out["p"], dt.nn.Parameter) and out["p"].requires_grad
    assert out["x"].requires_grad and out["x"].is_leaf and not out["y"].requires_grad
    _same_bits(out["p"].detach(), p.detach())


def test_file_objects_are_accepted(tmp_path):
    t = _sample(dt.float32, (2, 3))
    buf = io.BytesIO()
    dt.save({"t": t}, buf)
    buf.seek(0)
    _same_bits(dt.load(buf)["t"], t)
    with gzip.open(tmp_path / "c.gz", "wb") as f:  # GzipFile.mode is an int, not "wb"
        dt.save(t, f)
    with gzip.open(tmp_path / "c.gz", "rb") as f:
        _same_bits(dt.load(f), t)
    with open(tmp_path / "text", "w") as f, pytest.raises(TypeError, match="binary mode"):
        dt.save(t, f)


# ---- checkpoints ---------------------------------------------------------------------------------
def _model(seed):
    dt.manual_seed(seed)
    return dt.nn.Sequential(dt.nn.Linear(5, 8), dt.nn.BatchNorm1d(8), dt.nn.ReLU(), dt.nn.Linear(8, 3))


def _data():
    dt.manual_seed(1)
    return dt.randn(16, 5), dt.randint(0, 3, (16,))


def _train(model, opt, x, y, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = dt.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_resuming_from_a_checkpoint_matches_uninterrupted_training_bitwise(tmp_path):
    model, (x, y) = _model(0), _data()
    opt = dt.optim.Adam(model.parameters(), lr=0.01)
    _train(model, opt, x, y, 3)
    dt.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, tmp_path / "ckpt")
    straight = _train(model, opt, x, y, 4)

    resumed = _model(123)  # other weights: everything must come from the file
    opt2 = dt.optim.Adam(resumed.parameters(), lr=0.5)
    ckpt = dt.load(tmp_path / "ckpt")
    resumed.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optim"])
    assert ckpt["epoch"] == 3 and opt2.param_groups[0]["lr"] == 0.01
    assert ckpt["model"]["1.num_batches_tracked"].dtype == dt.int64
    assert int(ckpt["model"]["1.num_batches_tracked"]) == 3 and sorted(ckpt["optim"]["state"]) == list(range(6))
    assert _train(resumed, opt2, x, y, 4) == straight
    for (k, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        _same_bits(a, b)


def test_state_dict_round_trip_keeps_keys_and_buffers(tmp_path):
    model = _model(0)
    model(dt.randn(4, 5))  # running statistics that differ from their initial values
    sd = model.state_dict()
    out = _round_trip(sd, tmp_path)
    assert type(out) is OrderedDict and list(out) == list(sd)
    for k in sd:
        _same_bits(out[k], sd[k])


# ---- map_location and devices --------------------------------------------------------------------
def _restructure(path, edit):
    """Rewrite the devtensor JSON structure of a saved file (to fake other devices or a bad header)."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(json.loads(data[8:8 + n])["__metadata__"]["devtensor"])
    edit(meta["root"])
    stnp.save_file(stnp.load(data), str(path), metadata={"devtensor": json.dumps(meta)})


@pytest.fixture
def cuda_checkpoint(tmp_path):
    """A file that says its tensor lives on cuda:0 (written on the cpu, so it needs no GPU)."""
    p = tmp_path / "cuda.ckpt"
    dt.save({"w": dt.arange(3, dtype=dt.float32)}, p)
    _restructure(p, lambda root: root["items"][0][1].update(device="cuda:0"))
    return p


def test_map_location_forms(cuda_checkpoint):
    for ml in ("cpu", dt.device("cpu"), {"cuda:0": "cpu"}, {"cuda:0": dt.device("cpu")}):
        w = dt.load(cuda_checkpoint, map_location=ml)["w"]
        assert w.device == dt.device("cpu") and w.tolist() == [0.0, 1.0, 2.0]
    seen = []
    w = dt.load(cuda_checkpoint, map_location=lambda t, loc: seen.append(loc) or t * 2)["w"]
    assert seen == ["cuda:0"] and w.tolist() == [0.0, 2.0, 4.0]


def test_a_cuda_checkpoint_without_cuda_says_to_pass_map_location(cuda_checkpoint):
    if dt.cuda.is_available():
        assert dt.load(cuda_checkpoint)["w"].device.type == "cuda"
        return
    with pytest.raises(RuntimeError, match=r"saved on cuda:0.*map_location='cpu'"):
        dt.load(cuda_checkpoint)


def test_meta_device(tmp_path):
    out = _round_trip({"m": dt.empty(3, 4, dtype=dt.float16, device="meta")}, tmp_path)
    assert out["m"].device == dt.device("meta") and tuple(out["m"].shape) == (3, 4) and out["m"].dtype == dt.float16
    with pytest.raises(RuntimeError, match="saved on the meta device.*map_location='meta'"):
        dt.load(tmp_path / "obj.safetensors", map_location="cpu")
    shell = _round_trip(dt.randn(2, 5), tmp_path, map_location="meta")  # shapes only, no data read into a tensor
    assert shell.device == dt.device("meta") and tuple(shell.shape) == (2, 5)


# ---- atomic writes -------------------------------------------------------------------------------
@pytest.fixture
def old_checkpoint(tmp_path):
    p = tmp_path / "ckpt.safetensors"
    dt.save({"epoch": 1, "w": dt.ones(4)}, p)
    return p, p.read_bytes()


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_a_crash_mid_save_keeps_the_old_checkpoint_and_leaves_no_temp_file(old_checkpoint, monkeypatch, where):
    p, before = old_checkpoint

    def crash(*a, **k):
        raise KeyboardInterrupt("power cut")  # BaseException: cleanup must not depend on Exception

    monkeypatch.setattr(os, where, crash)
    with pytest.raises(KeyboardInterrupt):
        dt.save({"epoch": 2, "w": dt.zeros(1000)}, p)
    monkeypatch.undo()
    assert p.read_bytes() == before and os.listdir(p.parent) == [p.name]
    assert dt.load(p)["epoch"] == 1


def test_a_crash_inside_the_write_keeps_the_old_checkpoint(old_checkpoint, monkeypatch):
    p, before = old_checkpoint
    real_fdopen = os.fdopen

    class HalfWriter(io.FileIO):
        def write(self, b):
            super().write(bytes(b)[: len(b) // 2])  # half the bytes reach the disk, then the disk is full
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: HalfWriter(fd, "wb"))
    with pytest.raises(OSError, match="No space left"):
        dt.save({"epoch": 2}, p)
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert p.read_bytes() == before and os.listdir(p.parent) == [p.name]


def test_an_unsavable_object_touches_nothing(old_checkpoint):
    p, before = old_checkpoint
    with pytest.raises(TypeError, match=r"function at 'opt\.hooks\.1'"):
        dt.save({"opt": {"hooks": [1, lambda: 0]}}, p)
    assert p.read_bytes() == before and os.listdir(p.parent) == [p.name]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and symlinks")
def test_overwrite_keeps_permissions_and_writes_through_symlinks(old_checkpoint):
    p, _ = old_checkpoint
    p.chmod(0o640)
    dt.save({"epoch": 2}, p)
    assert p.stat().st_mode & 0o777 == 0o640
    link = p.parent / "latest"
    link.symlink_to(p.name)
    dt.save({"epoch": 3}, link)
    assert link.is_symlink() and dt.load(p)["epoch"] == 3


def test_saving_into_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dt.save(dt.ones(1), tmp_path / "nope" / "ckpt")


# ---- temporaries left by a killed writer -----------------------------------------------------------
# The child stalls after writing half of a large checkpoint into its temporary file (os.fdopen is
# patched in the child only), says so, and is SIGKILLed there: deterministic, no timing guesses.
_STALLED_WRITER = r"""
import os, sys, time
import devtensor as dt

real_fdopen = os.fdopen

class Stall:
    def __init__(self, fh):
        self.fh = fh
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.fh.__exit__(*exc)
    def write(self, data):
        self.fh.write(bytes(memoryview(data)[: len(data) // 2]))
        self.fh.flush()
        print("half written", flush=True)
        time.sleep(600)

os.fdopen = lambda fd, mode="r", *a, **k: Stall(real_fdopen(fd, mode, *a, **k))
dt.save({"epoch": 2, "w": dt.zeros(2_000_000)}, sys.argv[1])
"""


def _child(code, *args):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(dt.__file__)))  # the child imports this devtensor
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True,
                            cwd=root)


def _temps(p):
    return sorted(n for n in os.listdir(p.parent) if n != p.name)


def _dead_pid():
    """The pid of a process that has exited and been reaped."""
    proc = _child("pass")
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and pid probing are POSIX")
def test_a_writer_killed_mid_save_leaves_a_named_temp_that_the_next_save_removes(old_checkpoint):
    import re
    import signal

    from devtensor.serialization import _host_tag

    p, before = old_checkpoint
    proc = _child(_STALLED_WRITER, p)
    try:
        assert proc.stdout.readline().strip() == "half written", "the writer died before stalling"
        (name,) = _temps(p)
        assert re.fullmatch(rf"\.{re.escape(p.name)}\.{re.escape(_host_tag())}\.{proc.pid}\.[0-9a-f]{{8}}\.tmp", name)
        assert os.path.getsize(p.parent / name) >= 4_000_000  # half of the 8 MB checkpoint
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert _temps(p) == [name]  # nobody could clean up after a SIGKILL
    assert p.read_bytes() == before and dt.load(p)["epoch"] == 1  # the old checkpoint is intact
    dt.save({"epoch": 3, "w": dt.ones(3)}, p)
    assert _temps(p) == []
    assert dt.load(p)["epoch"] == 3


@pytest.mark.skipif(os.name != "posix", reason="pid probing is POSIX")
def test_only_temps_of_dead_writers_on_this_host_are_removed(old_checkpoint):
    import signal
    import time

    from devtensor.serialization import _WRITING, _create_temp, _host_tag

    p, _ = old_checkpoint
    host, other_host, dead = _host_tag(), _host_tag("another-node"), _dead_pid()
    sleeper = _child("import time; time.sleep(600)")
    zombie = _child("import time; time.sleep(600)")
    zombie.send_signal(signal.SIGKILL)  # killed but not reaped yet: a zombie, gone for our purposes
    has_proc = os.path.exists(f"/proc/{zombie.pid}/stat")  # where zombies can be told apart (Linux)
    deadline = time.monotonic() + 30
    while has_proc and time.monotonic() < deadline:  # until the kernel has made it a zombie
        with open(f"/proc/{zombie.pid}/stat", "rb") as fh:
            if fh.read().rsplit(b")", 1)[1][1:2] == b"Z":
                break
        time.sleep(0.01)
    try:
        keep = [f".{p.name}.{host}.{sleeper.pid}.0000aaaa.tmp",  # a live process: its save may be running
                f".{p.name}.{host}.1.0000bbbb.tmp",  # pid 1 is alive (PermissionError when not root)
                f".{p.name}.{other_host}.{dead}.0000cccc.tmp",  # another host's pid means nothing here
                f".{p.name}.bak.{host}.{dead}.0000dddd.tmp",  # another target's (ckpt.safetensors.bak)
                f".{p.name}.{host}.{dead}.tmp",  # not our name pattern
                f".{p.name}.0123456789ab.tmp"]  # the pre-pid pattern: writer unknown
        remove = [f".{p.name}.{host}.{dead}.0000eeee.tmp",  # a dead writer on this host
                  # this process's pid, but not a save of ours: left by an earlier process with our pid
                  # (a restarted container's PID 1)
                  f".{p.name}.{host}.{os.getpid()}.00001111.tmp"]
        (remove if has_proc else keep).append(f".{p.name}.{host}.{zombie.pid}.0000ffff.tmp")
        for n in keep + remove:
            (p.parent / n).write_bytes(b"partial")
        mine, fd = _create_temp(str(p))  # a save of this process in progress (another thread's)
        try:
            dt.save({"epoch": 2}, p)
            assert _temps(p) == sorted(keep + [os.path.basename(mine)])
        finally:
            os.close(fd)
            _WRITING.discard(mine)
            os.unlink(mine)
        assert dt.load(p)["epoch"] == 2
    finally:
        for proc in (sleeper, zombie):
            proc.kill()
            proc.wait()
            proc.stdout.close()


def test_host_tags_have_no_dots_and_never_merge_two_hosts():
    from devtensor.serialization import _host_tag

    assert _host_tag("node7") == "node7"
    tags = {_host_tag(h) for h in ("node1.cluster.local", "node1-cluster-local", "node1_cluster_local",
                                   "n" * 80, "n" * 81, "nöde")}
    assert len(tags) == 6 and not any("." in t or "/" in t for t in tags)
    assert all(len(t) <= 41 for t in tags)


@pytest.mark.skipif(os.name != "posix", reason="pid probing is POSIX")
def test_a_very_long_target_name_still_saves_and_cleans_up(tmp_path):
    from devtensor.serialization import _host_tag, _temp_prefix

    p = tmp_path / ("c" * 230)
    prefix = _temp_prefix(p.name)
    assert len(prefix) < 40  # a hash of the name: the temporary's name must stay under 255 bytes
    stale = tmp_path / f"{prefix}{_host_tag()}.{_dead_pid()}.0000aaaa.tmp"
    stale.write_bytes(b"partial")
    dt.save({"epoch": 1}, p)
    assert sorted(os.listdir(tmp_path)) == [p.name] and dt.load(p)["epoch"] == 1


# ---- unreadable files ----------------------------------------------------------------------------
def _bad_file_error(p):
    with pytest.raises(CheckpointError) as e:
        dt.load(p)
    assert str(p) in str(e.value) and isinstance(e.value, RuntimeError)
    return str(e.value)


@pytest.mark.parametrize("keep", [0, 5, 20, 0.5, -1], ids=lambda k: f"keep={k}")
def test_truncated_files_are_clear_errors(old_checkpoint, keep):
    p, full = old_checkpoint
    n = int(len(full) * keep) if isinstance(keep, float) else (len(full) + keep if keep < 0 else keep)
    p.write_bytes(full[:n])
    msg = _bad_file_error(p)
    assert "truncated" in msg


def test_random_garbage_is_a_clear_error(tmp_path):
    p = tmp_path / "garbage"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    assert "not a safetensors file" in _bad_file_error(p)
    p.write_bytes(struct.pack("<Q", 10) + b"\xff" * 10)  # a plausible length, then no JSON
    assert "not valid JSON" in _bad_file_error(p)


def test_other_formats_are_named(tmp_path):
    p = tmp_path / "plain.safetensors"
    stnp.save_file({"w": np.ones(3, np.float32)}, str(p))
    assert "without devtensor metadata" in _bad_file_error(p)
    p.write_bytes(pickle.dumps({"w": 1}, protocol=4))
    assert "pickle" in _bad_file_error(p)
    torch = pytest.importorskip("torch", reason="torch makes a real torch.save file")
    torch.save({"w": torch.ones(2)}, p)
    assert "torch.save" in _bad_file_error(p)


def test_a_structure_that_claims_the_wrong_shape_is_a_clear_error(tmp_path):
    p = tmp_path / "c"
    dt.save({"w": dt.ones(2, 3)}, p)
    _restructure(p, lambda root: root["items"][0][1].update(shape=[3, 2]))
    assert "'w' is float32[2, 3] in the file but the structure says float32[3, 2]" in _bad_file_error(p)
    _restructure(p, lambda root: root["items"][0][1].update(shape=[2, 3], dtype="int64"))
    assert "structure says int64[2, 3]" in _bad_file_error(p)


def test_a_safetensors_header_that_disagrees_with_its_data_is_a_clear_error(tmp_path):
    p = tmp_path / "c"
    dt.save(dt.ones(2, 3), p)
    data = p.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8:8 + n].replace(b'"shape":[2,3]', b'"shape":[2,2]').ljust(n)
    p.write_bytes(data[:8] + header + data[8 + n:])
    assert "safetensors could not read it" in _bad_file_error(p)


def test_malformed_and_future_structures_are_clear_errors(tmp_path):
    p = tmp_path / "c"
    for edit, words in [(lambda r: r.update(type="pickle"), "unknown structure node type 'pickle'"),
                        (lambda r: r.update(items=[["k", 1]]), "malformed structure node"),
                        (lambda r: r["items"][0][1].pop("dtype"), "bad or missing 'dtype'"),
                        (lambda r: r["items"][0][1].update(shape=[-1]), "bad shape"),
                        (lambda r: r["items"][0][1].update(key="nope"), "has no such entry")]:
        dt.save({"w": dt.ones(1)}, p)
        _restructure(p, edit)
        assert words in _bad_file_error(p)
    dt.save(1, p)
    meta = {"format": "devtensor.checkpoint", "version": 99, "root": {"type": "value", "value": 1}}
    stnp.save_file({}, str(p), metadata={"devtensor": json.dumps(meta)})
    assert "newer than this devtensor supports" in _bad_file_error(p)


class _Boom:
    """Unpickling this would create the marker file: the proof that load never unpickles."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_file_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Boom(str(marker)), protocol=0).decode("latin-1")
    p = tmp_path / "evil.safetensors"
    for structure in [payload, json.dumps({"format": "devtensor.checkpoint", "version": 1,
                                           "root": {"type": "value", "value": {"py/reduce": payload}}})]:
        stnp.save_file({"w": np.frombuffer(payload.encode("latin-1"), np.uint8).copy()}, str(p),
                       metadata={"devtensor": structure, "pickle": payload})
        _bad_file_error(p)
    assert not marker.exists()


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        dt.load(tmp_path / "missing")


# ---- what cannot be saved ------------------------------------------------------------------------
@pytest.mark.parametrize("obj, where", [
    ({"opt": {"hooks": [1, lambda: 0]}}, r"function at 'opt\.hooks\.1'"),
    ([{1, 2}], r"set at '0'"),
    (np.zeros(2), "ndarray at the top level"),
    ({"m": dt.nn.Linear(2, 2)}, r"Linear at 'm'.*state_dict"),
])
def test_unsupported_objects_name_where_they_are(obj, where, tmp_path):
    with pytest.raises(TypeError, match=where):
        dt.save(obj, tmp_path / "x")


def test_unsupported_keys_and_cycles(tmp_path):
    with pytest.raises(TypeError, match=r"dict key of type frozenset in 'a'"):
        dt.save({"a": {frozenset(): 1}}, tmp_path / "x")
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        dt.save({"l": loop}, tmp_path / "x")
    assert not list(tmp_path.iterdir())
