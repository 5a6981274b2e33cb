"""MNIST from the four IDX files; with root=None, the 5,000-digit sample embedded in the package.

Items are (image, label): image a float32 tensor of shape (1, 28, 28) in [0, 1] when no transform
is given (torchvision gives a PIL image; devtensor has no PIL dependency), label an int. `.data`
(uint8, N x 28 x 28) and `.targets` (int64) are as in torchvision; `as_tensors()` returns the
whole split as (X float32 N x 1 x 28 x 28, y int64) for fast training loops.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from pathlib import Path

import numpy as np

from ..ops.creation import from_numpy
from ..utils.data import Dataset
from .idx import IDXError, read_idx

EMBEDDED = Path(__file__).resolve().parent / "data" / "mnist-5k"

FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
           "http://yann.lecun.com/exdb/mnist/")
# SHA-256 of the official gzipped files
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


class MNIST(Dataset):
    def __init__(self, root=None, train=True, download=False, transform=None, target_transform=None):
        self.train = bool(train)
        self.transform = transform
        self.target_transform = target_transform
        self.root = EMBEDDED if root is None else Path(root).expanduser()
        if download and root is not None:
            self.download()
        self._x, self._y = _read_split(*(self._find(stem) for stem in FILES[self.train]))
        self.data = from_numpy(self._x)
        self.targets = from_numpy(self._y)
        self.classes = [f"{i} - {w}" for i, w in enumerate(
            ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))]

    def _find(self, stem):
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
            p = self.root / name
            if p.exists():
                return p
        hint = " (pass download=True to fetch the official files)" if self.root != EMBEDDED else ""
        raise FileNotFoundError(f"MNIST: {stem}[.gz] not found in {self.root}{hint}")

    def __len__(self):
        return len(self._y)

    def __getitem__(self, i):
        img = self._x[i]
        if self.transform is None:
            img = from_numpy((img.astype(np.float32) / 255.0)[None])
        else:
            img = self.transform(img)
        label = int(self._y[i])
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def as_tensors(self):
        """(X, y): all images as float32 (N, 1, 28, 28) in [0, 1] and labels int64, in one step."""
        return from_numpy(self._x.astype(np.float32)[:, None] / np.float32(255.0)), from_numpy(self._y.copy())

    def download(self):
        """Fetch the official gzipped files into root (verified by SHA-256, written atomically). A file
        already there is kept when it is the verified .gz or an uncompressed copy (yours to vouch for);
        a .gz that fails the checksum is deleted, so a bad download never sits in the cache."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stem in FILES[self.train]:
            name = stem + ".gz"
            dest = self.root / name
            if dest.exists():
                if _sha256(dest) == SHA256[name]:
                    continue
                dest.unlink()  # corrupt or partial: re-fetch rather than read it later
            elif any((self.root / n).exists() for n in (stem, stem.replace("-idx", ".idx"))):
                continue
            _fetch(name, dest)

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"Dataset MNIST\n    Number of datapoints: {len(self)}\n    Root location: {self.root}\n    Split: {split}"


def _read_split(images_path, labels_path):
    """(images uint8 N x 28 x 28, labels int64 N) from the two IDX files, checked against each other."""
    x, y = read_idx(images_path), read_idx(labels_path)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise IDXError(f"{images_path}: expected MNIST images (uint8, N x 28 x 28), got {x.dtype} "
                       f"{list(x.shape)}")
    if y.dtype != np.uint8 or y.ndim != 1:
        raise IDXError(f"{labels_path}: expected MNIST labels (uint8, N), got {y.dtype} {list(y.shape)}")
    if len(x) != len(y):
        raise IDXError(f"MNIST files disagree: {images_path} holds {len(x)} images but {labels_path} holds "
                       f"{len(y)} labels")
    if len(y) and int(y.max()) > 9:
        raise IDXError(f"{labels_path}: label {int(y.max())} is not a digit (0-9)")
    return np.ascontiguousarray(x), y.astype(np.int64)


def _fetch(name, dest):
    """Download `name` from the first mirror that serves it with the right SHA-256, into `dest`."""
    errors = []
    for mirror in MIRRORS:
        try:
            with urllib.request.urlopen(mirror + name, timeout=30) as r:
                blob = r.read()
        except (OSError, http.client.HTTPException) as e:  # URLError is an OSError; IncompleteRead is not
            errors.append(f"{mirror}{name}: {type(e).__name__}: {e}")
            continue
        digest = hashlib.sha256(blob).hexdigest()
        if digest != SHA256[name]:
            errors.append(f"{mirror}{name}: SHA-256 mismatch (got {digest}, expected {SHA256[name]}); not saved")
            continue
        _write_atomic(dest, blob)
        return
    raise RuntimeError(f"MNIST: could not download {name} from any mirror (offline, or a proxy altered the "
                       "file?). Tried:\n  " + "\n  ".join(errors)
                       + f"\nPut the four IDX files in {dest.parent} yourself, or use root=None for "
                       "the embedded 5,000-digit sample.")


def _write_atomic(dest, blob):
    # a crash mid-write leaves a .part file, never a short file under the name the reader looks for
    tmp = dest.with_name(dest.name + ".part")
    try:
        tmp.write_bytes(blob)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
