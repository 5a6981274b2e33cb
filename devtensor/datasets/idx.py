"""The IDX file format (MNIST's): read and write, gzipped or not, with clear errors on bad files."""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

# IDX type codes -> numpy dtypes (big-endian on disk)
_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
          np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


class IDXError(RuntimeError):
    """A file that is not a valid IDX file (wrong magic, truncated, bad gzip)."""


def _open(path):
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array of its native dtype."""
    path = os.fspath(path)
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # zlib.error: a corrupt deflate stream inside a .gz
        raise IDXError(f"{path}: cannot read IDX file ({type(e).__name__}: {e}); the file is truncated or "
                       "corrupt") from None
    if len(data) < 4:
        raise IDXError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    zero, code, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or code not in _TYPES or ndim == 0:
        raise IDXError(f"{path}: bad IDX magic number 0x{data[:4].hex()} (expected 0x0000TTNN with a known type TT)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_TYPES[code])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != need:
        raise IDXError(f"{path}: IDX body has {len(data) - header} bytes, but its header {list(shape)} "
                       f"needs {need} (truncated or corrupt file)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array, compress=None) -> None:
    """Write `array` as IDX (gzipped when compress=True or the name ends in .gz)."""
    a = np.asarray(array)
    be = a.dtype.newbyteorder(">") if a.dtype.itemsize > 1 else a.dtype
    if be not in _CODES:
        raise TypeError(f"write_idx: dtype {a.dtype} has no IDX type code")
    body = struct.pack(">BBBB", 0, 0, _CODES[be], a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + \
        a.astype(be).tobytes()
    path = os.fspath(path)
    gz = path.endswith(".gz") if compress is None else compress
    tmp = path + ".tmp"
    with (gzip.open(tmp, "wb") if gz else open(tmp, "wb")) as f:
        f.write(body)
    os.replace(tmp, path)
