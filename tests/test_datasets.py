"""MNIST from IDX files: the embedded sample, gz and raw files, bad files, transforms."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

import devtensor as dt
from devtensor.datasets import IDXError, MNIST, read_idx, write_idx
from devtensor.datasets import transforms as T
from devtensor.datasets.mnist import EMBEDDED


def _independent_labels(path):
    with gzip.open(path) as f:
        raw = f.read()
    assert int.from_bytes(raw[:4], "big") == 0x801
    return np.frombuffer(raw, np.uint8, offset=8)


def test_embedded_sample_counts_and_labels():
    tr, te = MNIST(train=True), MNIST(train=False)
    assert (len(tr), len(te)) == (4000, 1000)
    np.testing.assert_array_equal(tr.targets.numpy(), _independent_labels(EMBEDDED / "train-labels-idx1-ubyte.gz"))
    np.testing.assert_array_equal(np.bincount(te.targets.numpy()), [100] * 10)
    x, y = tr[0]
    assert tuple(x.shape) == (1, 28, 28) and x.dtype == dt.float32 and isinstance(y, int)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.5
    X, Y = te.as_tensors()
    assert tuple(X.shape) == (1000, 1, 28, 28) and Y.dtype == dt.int64
    np.testing.assert_allclose(X.numpy()[5, 0], te.data.numpy()[5] / 255.0, rtol=1e-6)


def test_reads_raw_and_gz_files_from_a_folder(tmp_path):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(EMBEDDED / (name + ".gz")) as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)  # uncompressed copies
    ds = MNIST(root=tmp_path, train=False)
    np.testing.assert_array_equal(ds.data.numpy(), MNIST(train=False).data.numpy())


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.*not found"):
        MNIST(root=tmp_path, train=False)
    blob = (EMBEDDED / "t10k-labels-idx1-ubyte.gz").read_bytes()
    with gzip.open(EMBEDDED / "t10k-images-idx3-ubyte.gz") as f:
        images = f.read()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(images[: len(images) // 2])  # truncated
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(blob)
    with pytest.raises(IDXError, match="truncated or corrupt"):
        MNIST(root=tmp_path, train=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x12\x34\x56\x78" + images[4:])
    with pytest.raises(IDXError, match="bad IDX magic"):
        MNIST(root=tmp_path, train=False)


def test_download_offline_fails_clearly(tmp_path, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match="could not download .*offline"):
        MNIST(root=tmp_path, train=False, download=True)
    assert not list(tmp_path.glob("*.gz"))  # nothing half-written


def test_idx_round_trip(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, a)
        np.testing.assert_array_equal(read_idx(tmp_path / name), a)


def test_transforms_compose_totensor_normalize():
    ds = MNIST(train=False, transform=T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]))
    x, _ = ds[3]
    raw = MNIST(train=False).data.numpy()[3] / 255.0
    np.testing.assert_allclose(x.numpy()[0], (raw - 0.1307) / 0.3081, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize((0.0,), (0.0,))
