"""The `devtensor` command: bench (JSON against its schema, CSV, plot, bad input) and info.

One real `--quick` run goes through a subprocess (what CI runs); one in-process run on a few ops
writes every output format. Everything else is option handling and pure functions.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import devtensor as dt
from devtensor.cli import CliError, main
from devtensor.cli import bench as B
from devtensor.cli import bench_cases as BC
from devtensor.cli import peaks

SCHEMA = json.loads((Path(B.__file__).parent / "bench_schema.json").read_text())
ROOT = Path(__file__).resolve().parents[1]
CUDA_OK = dt.backends.available().get("cuda", (False, ""))[0]


def _run(*args, timeout=240):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "devtensor", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


# ---- schema validation: jsonschema when installed, else the subset of JSON Schema we use -----------

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(v, t):
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return isinstance(v, _TYPES[t])


def _check(v, s, path="$"):
    """Errors of v against schema s: type, const, enum, required, properties,
    additionalProperties, items, oneOf, minimum, maximum, exclusiveMinimum (all that bench_schema uses)."""
    errs = []
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_is_type(v, t) for t in types):
            return [f"{path}: {v!r:.60} is not of type {types}"]
    if "const" in s and v != s["const"]:
        errs.append(f"{path}: {v!r} != {s['const']!r}")
    if "enum" in s and v not in s["enum"]:
        errs.append(f"{path}: {v!r} not in {s['enum']}")
    if "minimum" in s and isinstance(v, (int, float)) and v < s["minimum"]:
        errs.append(f"{path}: {v} < {s['minimum']}")
    if "maximum" in s and isinstance(v, (int, float)) and v > s["maximum"]:
        errs.append(f"{path}: {v} > {s['maximum']}")
    if "exclusiveMinimum" in s and isinstance(v, (int, float)) and v <= s["exclusiveMinimum"]:
        errs.append(f"{path}: {v} <= {s['exclusiveMinimum']}")
    if "oneOf" in s:
        ok = [sub for sub in s["oneOf"] if not _check(v, sub, path)]
        if len(ok) != 1:
            errs.append(f"{path}: matches {len(ok)} of oneOf")
    if isinstance(v, dict):
        errs += [f"{path}: missing {k!r}" for k in s.get("required", []) if k not in v]
        props = s.get("properties", {})
        for k, item in v.items():
            if k in props:
                errs += _check(item, props[k], f"{path}.{k}")
            elif isinstance(s.get("additionalProperties"), dict):
                errs += _check(item, s["additionalProperties"], f"{path}.{k}")
            elif s.get("additionalProperties") is False:
                errs.append(f"{path}: unexpected key {k!r}")
    if isinstance(v, list) and "items" in s:
        for i, item in enumerate(v):
            errs += _check(item, s["items"], f"{path}[{i}]")
    return errs


def validate(doc):
    try:
        import jsonschema
    except ImportError:
        errs = _check(doc, SCHEMA)
        assert not errs, "\n".join(errs[:20])
        return
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)


def test_the_checker_catches_errors():
    # the hand-written checker is only worth something if it fails on bad documents
    assert _check({"records": [{"median_s": -1}]}, SCHEMA)
    bad = {"op": "x", "median_s": "fast"}
    assert any("median_s" in e for e in _check(bad, SCHEMA["properties"]["records"]["items"]))
    assert not _check(None, SCHEMA["properties"]["devices"]["additionalProperties"]["properties"]["peak"])


# ---- one real quick run (the CI contract) ---------------------------------------------------------

def _check_run(doc, stderr, rc):
    validate(doc)
    assert "Traceback" not in stderr
    # failures of devtensor's own ops are reported (exit 1) but must not hide the rest; a failing
    # *baseline* would be a bug in the bench itself
    errors = [s for s in doc["skipped"] if s["kind"] == "error"]
    assert rc == (1 if errors else 0), stderr
    assert not [s for s in errors if s["impl"] != "devtensor"], errors
    assert {r["impl"] for r in doc["records"]} >= {"devtensor", "numpy"}
    assert all(r["device"] == "cpu" for r in doc["records"])
    for r in doc["records"]:
        assert r["min_s"] <= r["median_s"] <= r["max_s"]
        if r["impl"] == "devtensor":
            assert set(r["speedup_vs"]) <= set(doc["settings"]["baselines"])


def test_quick_json_subprocess():
    p = _run("bench", "--quick", "--json", "-", "--no-progress")
    doc = json.loads(p.stdout)  # stdout holds only the JSON; the table went to stderr
    _check_run(doc, p.stderr, p.returncode)
    assert doc["settings"]["quick"] is True
    ops = {r["op"] for r in doc["records"]}
    assert {"matmul", "conv2d", "sum", "add", "adam"} <= ops
    assert not {"h2d", "d2h"} & ops  # transfers are cuda-only
    assert "devtensor" in p.stderr and "matmul" in p.stderr


@pytest.fixture(scope="module")
def inprocess_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    out = {k: d / f"bench.{k}" for k in ("json", "csv", "png", "md")}
    rc = main(["bench", "--quick", "--ops", "matmul,sum,adam", "--sizes", "small", "--min-time", "0.005",
               "--no-progress", "--json", str(out["json"]), "--csv", str(out["csv"]), "--plot", str(out["png"]),
               "--markdown", str(out["md"])])
    return rc, out


def test_inprocess_json(inprocess_run, capsys):
    rc, out = inprocess_run
    doc = json.loads(out["json"].read_text())
    _check_run(doc, "", rc)
    assert doc["settings"]["ops"] == ["matmul", "sum", "adam"]
    assert {r["op"] for r in doc["records"]} == {"matmul", "sum", "adam"}


def test_inprocess_csv(inprocess_run):
    _, out = inprocess_run
    doc = json.loads(out["json"].read_text())
    with open(out["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(doc["records"])
    for row in rows:
        assert float(row["median_s"]) > 0 and int(row["repeats"]) >= 1
        assert row["impl"] in B.IMPLS
        if row["impl"] == "devtensor" and row["speedup_vs_numpy"]:
            assert float(row["speedup_vs_numpy"]) > 0


def test_inprocess_plot_and_markdown(inprocess_run):
    _, out = inprocess_run
    png = out["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = out["md"].read_text()
    assert "| op | case | devtensor |" in md and "matmul" in md


# ---- bad input: one line, non-zero, no traceback ----------------------------------------------------

BAD = [
    (["bench", "--devices", "tpu"], "unknown device 'tpu'"),
    (["bench", "--devices", "meta"], "meta device holds no data"),
    (["bench", "--ops", "nosuchop"], "unknown op 'nosuchop'; valid ops: matmul"),
    (["bench", "--baselines", "jax"], "unknown baseline 'jax'"),
    (["bench", "--sizes", "nosuchsize"], "matches no case"),
    (["bench", "--sizes", "batch=0"], "batch=N needs a positive integer"),
    (["bench", "--ops", "h2d", "--devices", "cpu"], "run only on cuda"),
    (["bench", "--json", "-", "--csv", "-"], "only one of"),
    (["bench", "--json", "/nonexistent/dir/x.json"], "does not exist"),
]
if not CUDA_OK:
    BAD.append((["bench", "--devices", "cpu,cuda"], "device 'cuda' is not available"))


@pytest.mark.parametrize("argv,msg", BAD, ids=[" ".join(a[1:]) for a, _ in BAD])
def test_bad_input_inprocess(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("devtensor bench: error: ") and msg in err, err


@pytest.mark.parametrize("args", [["--devices", "tpu"], ["--ops", "nosuchop"]]
                         + ([["--devices", "cuda"]] if not CUDA_OK else []))
def test_bad_input_subprocess(args):
    p = _run("bench", *args, timeout=60)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--repeats", "0"])
    assert e.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--devices", "--ops", "--sizes", "--quick", "--baselines", "--repeats", "--json", "--csv",
                "--plot", "--tf32"):
        assert opt in out
    assert main([]) == 2  # no command: usage on stderr, not a traceback


def test_list_does_not_time(capsys):
    assert main(["bench", "--list", "--ops", "conv", "--sizes", "resnet,batch=4"]) == 0
    out = capsys.readouterr().out
    assert "resnet50 3x3 64->64 56x56 b4" in out and "conv2d_backward" in out and "b8" not in out


# ---- info -------------------------------------------------------------------------------------------

def test_info_subprocess():
    p = _run("info", timeout=120)
    assert p.returncode == 0, p.stderr
    for word in ("numpy", "cpu", "numba", "backends", "BLAS", "kernel caches", "cuda"):
        assert word in p.stdout
    assert "Traceback" not in p.stderr


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backends"]["cpu"]["available"] is True
    assert info["devices"]["cpu"][0]["logical_cores"] >= 1
    if not CUDA_OK:
        assert info["backends"]["cuda"]["reason"]  # why it is unavailable, in words


# ---- pieces ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,model", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM5 80GB"), ("NVIDIA H100 PCIe", "H100 PCIe 80GB"),
    ("NVIDIA H200", "H200 SXM 141GB"), ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"), ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
    ("NVIDIA L4", "L4"), ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
    ("NVIDIA H100 NVL", None), ("Tesla T4", None), ("", None)])
def test_peak_lookup(name, model):
    p = peaks.lookup(name)
    assert (p and p["model"]) == model or (p is None and model is None)


def test_pct_of_peak_is_the_roofline():
    h100 = peaks.lookup("NVIDIA H100 80GB HBM3")
    # memory bound (intensity 0.25): judged against 3350 GB/s
    assert peaks.pct_of_peak(h100, 1e9, 4e9, 4e9 / 3350e9) == pytest.approx(100)
    # compute bound: against 66.9 TFLOP/s, or 494.7 with TF32
    s = 2 * 4096 ** 3 / 66.9e12
    assert peaks.pct_of_peak(h100, 2 * 4096 ** 3, 3 * 4 * 4096 ** 2, s) == pytest.approx(100)
    assert peaks.pct_of_peak(h100, 2 * 4096 ** 3, 3 * 4 * 4096 ** 2, s, tf32=True) < 20
    assert peaks.pct_of_peak(h100, 0, 64e9, 1.0, transfer=True) == pytest.approx(100)
    assert peaks.pct_of_peak(None, 1, 1, 1) is None


def test_case_catalogue():
    cases = BC.all_cases()
    assert {c.op for c in cases} == set(BC.OPS)
    assert len({(c.op, c.label) for c in cases}) == len(cases)
    for c in cases:
        assert c.tier in BC.TIERS and c.bytes > 0 and c.mem_bytes > 0
        assert "," not in c.label  # --sizes splits on commas
        assert c.flops > 0 or c.op in ("h2d", "d2h")
    assert {c.op for c in cases if c.tier == "small"} == set(BC.OPS)  # --quick touches every op
    mm = next(c for c in cases if c.label == "1024x1024x1024")
    assert mm.flops == 2 * 1024 ** 3


def test_sizes_and_batch_override():
    cases = BC.all_cases(batch=16)
    labels = {c.label for c in cases if c.op == "conv2d"}
    assert labels == {"mnist conv1 1->32 28x28 b16", "mnist conv2 32->64 26x26 b16",
                      "resnet50 3x3 64->64 56x56 b16", "resnet50 3x3 128->128 28x28 b16",
                      "resnet50 3x3 256->256 14x14 b16", "resnet50 3x3 512->512 7x7 b16"}
    sel = B.select(BC.all_cases(), ["matmul"], B.parse_sizes("4096"), ["cpu"], quick=False)
    assert [c.label for c, _ in sel] == ["4096x4096x4096"]  # a label piece reaches the large tier
    sel = B.select(BC.all_cases(), ["matmul"], B.parse_sizes(None), ["cpu"], quick=True)
    assert {c.tier for c, _ in sel} == {"small"}
    assert B.resolve_ops("reduce,matmul") == ["matmul", "sum", "max", "argmax"]  # groups expand, report order
    with pytest.raises(CliError, match="valid ops"):
        B.resolve_ops("matmul,nosuchop")


def test_case_too_big_for_memory_is_skipped_not_run():
    def build(impl, tg):  # pragma: no cover - must never be called
        raise AssertionError("built a case that cannot fit")

    huge = BC.Case("add", "huge", "large", "(2**60,)", 1.0, 1.0, float(2 ** 62), build)
    kind, item = B.run_task(huge, "cpu", "devtensor", B.Settings(1, 0.001, 0, False))
    assert kind == "skipped" and item["kind"] == "memory" and "free on cpu" in item["reason"]


def test_failures_become_skips():
    def oom(impl, tg):
        raise MemoryError("Unable to allocate 1 TiB")

    def broken(impl, tg):
        raise ValueError("boom")

    st = B.Settings(1, 0.001, 0, False)
    kind, item = B.run_task(BC.Case("add", "oom", "small", "", 1.0, 1.0, 1.0, oom), "cpu", "numpy", st)
    assert (kind, item["kind"]) == ("skipped", "memory")
    kind, item = B.run_task(BC.Case("add", "bad", "small", "", 1.0, 1.0, 1.0, broken), "cpu", "numpy", st)
    assert (kind, item["kind"], item["reason"]) == ("skipped", "error", "ValueError: boom")


def test_cpu_implementations_are_timed_round_robin_and_fail_alone():
    order = []

    def build(impl, tg):
        if impl == "numpy":
            raise BC.Unsupported("no numpy equivalent")
        if impl == "torch":
            raise ValueError("boom")
        return lambda: order.append(impl), "a note"

    st = B.Settings(3, 0.0, 0, False, pause=0.0)
    case = BC.Case("add", "rr", "small", "", 1.0, 1.0, 1.0, build)
    got = B.run_group(case, "cpu", ["devtensor", "numpy", "torch"], st)
    assert [(k, i["impl"]) for k, i in got] == [("record", "devtensor"), ("skipped", "numpy"), ("skipped", "torch")]
    assert got[0][1]["note"] == "a note" and got[0][1]["repeats"] == 3
    assert got[1][1]["kind"] == "n/a" and got[2][1]["reason"] == "ValueError: boom"

    def two(impl, tg):
        return lambda: order.append(impl)

    order.clear()
    got = B.run_group(BC.Case("add", "rr2", "small", "", 1.0, 1.0, 1.0, two), "cpu", ["devtensor", "numpy"], st)
    assert [k for k, _ in got] == ["record", "record"]
    assert order[-6:] == ["devtensor", "numpy", "numpy", "devtensor", "devtensor", "numpy"]  # rotating rounds

    def raises_when_timed(impl, tg):
        calls = []

        def fn():
            calls.append(1)
            if impl == "numpy" and len(calls) > 2:
                raise RuntimeError("failed on a later call")
        return fn

    got = B.run_group(BC.Case("add", "rr3", "small", "", 1.0, 1.0, 1.0, raises_when_timed), "cpu",
                      ["devtensor", "numpy"], st)
    assert got[0][0] == "record" and got[1][0] == "skipped" and "later call" in got[1][1]["reason"]


def test_third_party_device(tmp_path):
    # a plugin backend is benchmarked like cuda would be: devtensor alone (no baseline runs there),
    # its own synchronize, no memory figure; the cpu rows of the same run keep their baselines
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from toy_backend import make_toy_backend
    finally:
        sys.path.pop(0)
    if "benchtoy" not in dt.backends.available():
        dt.backends.register(make_toy_backend("benchtoy"))
    out = tmp_path / "toy.json"
    rc = main(["bench", "--quick", "--devices", "cpu,benchtoy", "--ops", "add,matmul", "--sizes", "1024 elem,128x128",
               "--baselines", "numpy", "--min-time", "0.002", "--no-progress", "--json", str(out)])
    doc = json.loads(out.read_text())
    validate(doc)
    assert rc == 0, doc["skipped"]
    toy = [r for r in doc["records"] if r["device"] == "benchtoy"]
    assert {r["op"] for r in toy} == {"add", "matmul"} and {r["impl"] for r in toy} == {"devtensor"}
    assert doc["devices"]["benchtoy"]["measured_copy_gbps"] is None
    cpu_dt = [r for r in doc["records"] if r["device"] == "cpu" and r["impl"] == "devtensor"]
    assert all("numpy" in r["speedup_vs"] for r in cpu_dt)


# ---- the cuda paths, without a GPU: the kernel emulator's stand-in cupy -----------------------------

EMULATOR = ROOT / "ci" / "kernel_emulator"
# The stand-in (ci/kernel_emulator/fakecupy.py) covers what devtensor's kernels use; the bench also
# asks the runtime for free memory, versions and device properties, times the copy bandwidth with
# events and runs CuPy's ElementwiseKernel (the Adam baseline): shim those here. Run in a
# subprocess so the stand-in never leaks into this test process.
_FAKE_CUDA = r"""
import sys, time
import numpy as np
sys.path.insert(0, sys.argv.pop(1))
import build, fakecupy
build.build_all()
cp = fakecupy.install()
rt = cp.cuda.runtime
rt.memGetInfo = lambda: (70 * 2**30, 80 * 2**30)
rt.runtimeGetVersion = rt.driverGetVersion = lambda: 13000
rt.getDeviceProperties = lambda i=0: {"name": b"NVIDIA H100 80GB HBM3", "major": 9, "minor": 0,
                                      "totalGlobalMem": 80 * 2**30, "multiProcessorCount": 132}
class Event:
    def record(self, stream=None): self.t = time.perf_counter()
    def synchronize(self): pass
cp.cuda.Event = Event
cp.cuda.get_elapsed_time = lambda a, b: (b.t - a.t) * 1e3
cp.get_default_memory_pool().free_bytes = lambda: 0
class ElementwiseKernel:
    def __init__(self, ins, outs, body, name):
        self.names = [p.split()[-1] for p in (ins + "," + outs).split(",")]
        self.body = [s.split("=", 1) for s in body.split(";") if s.strip()]
    def __call__(self, *args):
        env = dict(zip(self.names, args), sqrt=np.sqrt)
        for k, v in self.body:
            env[k.strip()][...] = eval(v, {}, env)
cp.ElementwiseKernel = ElementwiseKernel
from devtensor.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not (EMULATOR / "fakecupy.py").exists(), reason="ci/kernel_emulator is not in this checkout")
def test_cuda_paths_on_the_kernel_emulator(tmp_path):
    import shutil

    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("the kernel emulator needs g++")
    script, out = tmp_path / "fake_cuda.py", tmp_path / "cuda.json"
    script.write_text(_FAKE_CUDA)
    p = subprocess.run([sys.executable, str(script), str(EMULATOR), "bench", "--devices", "cpu,cuda", "--quick",
                        "--ops", "matmul,sum,softmax,adam,transfer", "--sizes", "128x128,all 1024,100x10,MLP,1 MiB",
                        "--baselines", "numpy,cupy", "--min-time", "0.002", "--repeats", "1", "--no-progress",
                        "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(out.read_text())
    validate(doc)
    cuda = [r for r in doc["records"] if r["device"] == "cuda"]
    assert {r["impl"] for r in cuda} == {"devtensor", "cupy"}  # numpy stays on cpu, cupy on cuda
    assert {r["op"] for r in cuda} == {"matmul", "sum", "softmax", "adam", "h2d", "d2h"}
    assert doc["devices"]["cuda"]["peak"]["model"] == "H100 SXM5 80GB"
    assert doc["devices"]["cuda"]["measured_copy_gbps"] > 0
    assert all(r["pct_peak"] is not None and "cupy" in r["speedup_vs"] for r in cuda if r["impl"] == "devtensor")
    assert [r["pct_copy_bw"] for r in cuda if r["op"] in ("h2d", "d2h")] == [None] * 4  # host link, not copy
