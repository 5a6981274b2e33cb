"""Bad input gives a clear error: the exception kind PyTorch raises, and a message that names the
offending shapes, dtypes, keys or files (never a deep numpy traceback or a silently wrong result)."""
from __future__ import annotations

import gzip
import http.client
import io
import urllib.error
import urllib.request

import numpy as np
import pytest

import devtensor as dt
from devtensor.datasets import MNIST, IDXError, write_idx
from devtensor.datasets import mnist as mnist_mod
from devtensor.utils.data import DataLoader, TensorDataset

F = dt.nn.functional


@pytest.fixture
def logits():
    dt.manual_seed(0)
    return dt.randn(4, 3)


# ---- losses --------------------------------------------------------------------------------------
def test_cross_entropy_with_float_class_labels(logits):
    # float targets mean class probabilities: of shape (4,) they cannot be, and the message says both
    with pytest.raises(RuntimeError, match=r"probabilities and must have the input's shape.*"
                                           r"must be int64 \(convert labels with \.long\(\)\).*"
                                           r"\(4, 3\).*shape=\(4,\), dtype=float32"):
        F.cross_entropy(logits, dt.tensor([0.0, 1.0, 2.0, 1.0]))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss], ids=["cross_entropy", "nll_loss"])
def test_class_labels_of_the_wrong_batch_size(loss, logits):
    with pytest.raises(ValueError, match=r"expected target of shape \[4\] for input of shape \[4, 3\], got \[3\]"):
        loss(logits, dt.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"got \[4, 1\]"):
        loss(logits, dt.tensor([[0], [1], [2], [1]]))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss], ids=["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad", [3, -2])
def test_out_of_range_class_index(loss, bad, logits):
    with pytest.raises(IndexError, match=f"target {bad} is out of bounds for 3 classes"):
        loss(logits, dt.tensor([0, 1, bad, 1]))


def test_ignore_index_is_not_out_of_range(logits):
    assert np.isfinite(F.cross_entropy(logits, dt.tensor([0, -100, 2, 1])).item())


def test_nll_loss_rejects_float_labels(logits):
    with pytest.raises(RuntimeError, match="float32"):
        F.nll_loss(logits, dt.tensor([0.0, 1.0, 2.0, 1.9]))


def test_losses_reject_integer_inputs():
    # PyTorch's classes: NotImplementedError (no integer kernel), RuntimeError ("Found dtype Long but expected Float")
    with pytest.raises(NotImplementedError, match="expected floating point tensors, got int64"):
        F.cross_entropy(dt.tensor([[1, 2, 3]]), dt.tensor([0]))
    with pytest.raises(RuntimeError, match="binary_cross_entropy: expected floating point tensors, got int64"):
        F.binary_cross_entropy(dt.rand(4), dt.tensor([0, 1, 1, 0]))


def test_mse_loss_shape_mismatch(logits):
    with pytest.warns(UserWarning, match=r"target size \(\[5, 3\]\).*input size \(\[4, 3\]\)"), \
            pytest.raises(RuntimeError, match=r"size of tensor a \(4\) must match the size of tensor b \(5\)"):
        F.mse_loss(logits, dt.randn(5, 3))
    with pytest.warns(UserWarning, match=r"target size \(\[4\]\)"):  # broadcasts, as PyTorch, but says so
        with pytest.raises(RuntimeError, match="broadcast"):
            F.mse_loss(logits, dt.randn(4))


@pytest.mark.parametrize("target_shape", [(4, 1), (3,)], ids=str)
def test_binary_cross_entropy_shape_mismatch(target_shape):
    with pytest.raises(ValueError, match=rf"target size \[{', '.join(map(str, target_shape))}\] must be the "
                                         r"same as input size \[4\]"):
        F.binary_cross_entropy(dt.rand(4), dt.rand(*target_shape))


def test_binary_cross_entropy_rejects_inputs_outside_0_1():
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(dt.tensor([0.5, 1.5]), dt.tensor([0.0, 1.0]))


# ---- state dicts ---------------------------------------------------------------------------------
def _net():
    return dt.nn.Sequential(dt.nn.Linear(3, 4), dt.nn.BatchNorm1d(4), dt.nn.Linear(4, 2))


def test_load_state_dict_reports_every_problem_at_once():
    model = _net()
    sd = dict(model.state_dict())
    del sd["0.bias"], sd["1.running_var"]
    sd["3.weight"] = dt.zeros(1)
    sd["2.weight"] = dt.zeros(5, 4)
    with pytest.raises(RuntimeError) as e:
        model.load_state_dict(sd)
    msg = str(e.value)
    assert msg.startswith("Error(s) in loading state_dict for Sequential")
    assert 'Missing key(s) in state_dict: "0.bias", "1.running_var"' in msg
    assert 'Unexpected key(s) in state_dict: "3.weight"' in msg
    assert "size mismatch for 2.weight: copying a param with shape devtensor.Size([5, 4]) from checkpoint, " \
           "the shape in current model is devtensor.Size([2, 4])" in msg


def test_load_state_dict_non_strict_returns_keys_but_still_refuses_shape_mismatch():
    model = _net()
    sd = dict(model.state_dict())
    del sd["0.bias"]
    sd["extra"] = dt.zeros(1)
    assert model.load_state_dict(sd, strict=False) == (["0.bias"], ["extra"])
    sd["0.weight"] = dt.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight"):
        model.load_state_dict(sd, strict=False)
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like, got list"):
        model.load_state_dict([])


def test_optimizer_state_dict_of_another_model():
    small = dt.optim.Adam(dt.nn.Linear(2, 2).parameters())
    opt = dt.optim.Adam(_net().parameters())
    with pytest.raises(ValueError, match=r"group 0: 2 saved parameters, 6 in the optimizer"):
        opt.load_state_dict(small.state_dict())
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict(_net().state_dict())  # a model's state dict handed to the optimizer


# ---- MNIST files ---------------------------------------------------------------------------------
IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


@pytest.fixture
def mnist_dir(tmp_path):
    """A valid 10-digit test split in tmp_path."""
    rng = np.random.default_rng(0)
    write_idx(tmp_path / IMAGES, rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / LABELS, np.arange(10, dtype=np.uint8))
    assert len(MNIST(tmp_path, train=False)) == 10
    return tmp_path


def test_missing_mnist_files_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[\.gz\] not found in .*download=True"):
        MNIST(tmp_path, train=False)


@pytest.mark.parametrize("damage", ["truncated gzip", "corrupt gzip", "empty"])
def test_damaged_gzip_names_the_file(mnist_dir, damage):
    blob = (mnist_dir / IMAGES).read_bytes()
    bad = {"truncated gzip": blob[: len(blob) // 2], "corrupt gzip": blob[:20] + b"\x00\xff" * 200,
           "empty": b""}[damage]
    (mnist_dir / IMAGES).write_bytes(bad)
    with pytest.raises(IDXError, match=rf"{IMAGES}: .*(truncated or corrupt|too short)"):
        MNIST(mnist_dir, train=False)


def test_wrong_magic_number(mnist_dir):
    raw = gzip.decompress((mnist_dir / LABELS).read_bytes())
    (mnist_dir / LABELS).write_bytes(gzip.compress(b"\x12\x34" + raw[2:]))
    with pytest.raises(IDXError, match=rf"{LABELS}: bad IDX magic number 0x1234"):
        MNIST(mnist_dir, train=False)


def test_images_and_labels_count_mismatch(mnist_dir):
    write_idx(mnist_dir / LABELS, np.arange(9, dtype=np.uint8))
    with pytest.raises(IDXError, match=rf"{IMAGES} holds 10 images but .*{LABELS} holds 9 labels"):
        MNIST(mnist_dir, train=False)


@pytest.mark.parametrize("name, array, words", [
    (IMAGES, np.zeros((10, 28, 28), np.float32), "expected MNIST images .* got float32 \\[10, 28, 28\\]"),
    (IMAGES, np.zeros((10, 28, 27), np.uint8), "got uint8 \\[10, 28, 27\\]"),
    (IMAGES, np.zeros(10, np.uint8), "got uint8 \\[10\\]"),  # the labels file under the images' name
    (LABELS, np.full(10, 12, np.uint8), "label 12 is not a digit"),
], ids=["float images", "27 columns", "1-d images", "label 12"])
def test_files_that_are_not_mnist(mnist_dir, name, array, words):
    write_idx(mnist_dir / name, array.astype(array.dtype.newbyteorder(">")) if array.itemsize > 1 else array)
    with pytest.raises(IDXError, match=f"{name}: .*{words}"):
        MNIST(mnist_dir, train=False)


# ---- MNIST download ------------------------------------------------------------------------------
class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _serve(monkeypatch, reply):
    """Replace the network: `reply(url)` returns bytes or raises."""
    urls = []

    def urlopen(url, timeout=None):
        urls.append(url)
        return _Response(reply(url))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return urls


def _offline(url):
    raise urllib.error.URLError(OSError(101, "Network is unreachable"))


def test_download_offline_fails_clearly_and_writes_nothing(tmp_path, monkeypatch):
    urls = _serve(monkeypatch, _offline)
    with pytest.raises(RuntimeError) as e:
        MNIST(tmp_path, train=False, download=True)
    msg = str(e.value)
    assert f"could not download {IMAGES} from any mirror (offline" in msg and "Network is unreachable" in msg
    assert all(m + IMAGES in msg for m in mnist_mod.MIRRORS) and str(tmp_path) in msg
    assert len(urls) == len(mnist_mod.MIRRORS) and list(tmp_path.iterdir()) == []


def test_a_dropped_connection_is_a_download_error(tmp_path, monkeypatch):
    def dropped(url):
        raise http.client.IncompleteRead(b"partial")  # not an OSError

    _serve(monkeypatch, dropped)
    with pytest.raises(RuntimeError, match="IncompleteRead"):
        MNIST(tmp_path, train=False, download=True)
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_never_lands_in_the_cache(tmp_path, monkeypatch):
    _serve(monkeypatch, lambda url: b"<html>captive portal</html>")
    (tmp_path / IMAGES).write_bytes(b"a stale half download")  # and an old bad file is not kept either
    with pytest.raises(RuntimeError, match=f"SHA-256 mismatch .*expected {mnist_mod.SHA256[IMAGES]}.*not saved"):
        MNIST(tmp_path, train=False, download=True)
    assert list(tmp_path.iterdir()) == []


def test_download_verifies_and_keeps_good_files(tmp_path, monkeypatch):
    blobs = {IMAGES: gzip.compress(b"images"), LABELS: gzip.compress(b"labels")}
    monkeypatch.setattr(mnist_mod, "SHA256", {k: __import__("hashlib").sha256(v).hexdigest()
                                              for k, v in blobs.items()})
    urls = _serve(monkeypatch, lambda url: blobs[url.rsplit("/", 1)[1]])
    with pytest.raises(IDXError):  # the fake payloads are not IDX: but they were fetched and verified
        MNIST(tmp_path, train=False, download=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(blobs) and len(urls) == 2
    with pytest.raises(IDXError):
        MNIST(tmp_path, train=False, download=True)
    assert len(urls) == 2  # verified files are not fetched again


def test_download_with_files_already_there_needs_no_network(mnist_dir, monkeypatch):
    for name in (IMAGES, LABELS):  # the user's own uncompressed copies (no official checksum to match)
        (mnist_dir / name[:-3]).write_bytes(gzip.decompress((mnist_dir / name).read_bytes()))
        (mnist_dir / name).unlink()
    _serve(monkeypatch, _offline)
    assert len(MNIST(mnist_dir, train=False, download=True)) == 10


# ---- DataLoader ----------------------------------------------------------------------------------
def _ds():
    return TensorDataset(dt.zeros(6, 2), dt.arange(6))


@pytest.mark.parametrize("bs", [0, -1, -64])
def test_dataloader_batch_size_must_be_positive(bs):
    with pytest.raises(ValueError, match=f"batch_size should be a positive integer value, but got batch_size={bs}"):
        DataLoader(_ds(), batch_size=bs)


def test_dataloader_option_conflicts():
    with pytest.raises(ValueError, match="num_workers option should be a non-negative integer, got -1"):
        DataLoader(_ds(), num_workers=-1)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(_ds(), sampler=range(6), shuffle=True)
    for kw in ({"batch_size": 2}, {"shuffle": True}, {"drop_last": True}):
        with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
            DataLoader(_ds(), batch_sampler=[[0, 1], [2]], **kw)
    assert [b[1].tolist() for b in DataLoader(_ds(), batch_sampler=[[0, 1], [5]])] == [[0, 1], [5]]


def test_tensor_dataset_size_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"tensor 0 has 6 rows, tensor 1 has shape \[5\]"):
        TensorDataset(dt.zeros(6, 2), dt.zeros(5))


@pytest.mark.parametrize("index_dtype", ["bool", "uint8", "float32"])
def test_gather_and_scatter_add_take_int32_or_int64_indices_only(index_dtype):
    # PyTorch: "Expected dtype int32/int64 for index"; a bool index used to be taken as 0/1 positions
    x = dt.arange(5.0)
    idx = dt.tensor([1, 0], dtype=getattr(dt, index_dtype))
    with pytest.raises(RuntimeError, match="int32/int64"):
        dt.gather(x, 0, idx)
    with pytest.raises(RuntimeError, match="int32/int64"):
        dt.scatter_add(x, 0, idx, dt.ones(2))
    np.testing.assert_array_equal(dt.gather(x, 0, dt.tensor([1, 0], dtype=dt.int32)).numpy(), [1.0, 0.0])
