"""devtensor.save / devtensor.load: checkpoints as ONE safetensors file, never pickle.

    dt.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, "ckpt.safetensors")
    ckpt = dt.load("ckpt.safetensors", map_location="cpu")

What can be saved: tensors, and dicts (any order, OrderedDict kept), lists and tuples nested to any
depth of tensors and plain values (int, float, str, bool, None, dt.dtype, dt.device). Dict keys may
be str, int, float, bool, None or tuples of these, and keep their type (an optimizer's state has int
keys).

The file: each tensor's bytes are one safetensors entry (C-contiguous host copy; bfloat16, which
safetensors' numpy front end does not know, is stored as its raw uint16 bits). The structure --
every container, plain value and, per tensor, its safetensors key, dtype, shape, device and
requires_grad -- is JSON under the metadata key "devtensor". Loading parses JSON and raw arrays
only: it never executes code, so `weights_only` is accepted for PyTorch compatibility and changes
nothing. A tensor seen twice in `obj` (the same object) is stored once and loads as one tensor.

Writes to a path are atomic: the bytes go to a temporary file in the target's directory, which is
flushed, fsync'ed and os.replace'd onto the target (then the directory is fsync'ed). A failure at
any point removes the temporary file and leaves any previous checkpoint untouched.
"""
from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from collections import OrderedDict

import numpy as np
import safetensors.numpy as _stnp

from . import dtypes as _dt
from .device import device as _device_cls
from .device import resolve as _resolve
from .tensor import Tensor

__all__ = ["save", "load"]

_META_KEY = "devtensor"
_FORMAT = "devtensor.checkpoint"
_VERSION = 1
_PLAIN = (str, bool, int, float, type(None))
_WHAT = ("tensors, dicts, lists, tuples, int, float, str, bool, None, devtensor.dtype and devtensor.device")


# ---- encoding ------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self):
        self.arrays = {}
        self.seen = {}  # id(tensor) -> key (a tensor reachable twice is stored once)

    def _key(self, path):
        base = path or "tensor"
        key, n = base, 1
        while key in self.arrays or key == "__metadata__" or key in self.seen.values():
            key = f"{base}#{n}"
            n += 1
        return key

    def tensor(self, t, path):
        node = {"type": "tensor", "dtype": t.dtype.name, "shape": list(t.shape), "device": str(t.device),
                "requires_grad": bool(t.requires_grad)}
        if t.device.type == "meta":
            node["key"] = None  # no data to store
            return node
        if id(t) in self.seen:
            node["key"] = self.seen[id(t)]
            return node
        host = np.ascontiguousarray(np.asarray(t._host()))
        if t.dtype is _dt.bfloat16:
            host = host.view(np.uint16)
            node["storage"] = "uint16"
        key = self._key(path)
        self.arrays[key] = host
        self.seen[id(t)] = key
        node["key"] = key
        return node

    def encode(self, obj, path):
        if isinstance(obj, Tensor):
            return self.tensor(obj, path)
        if isinstance(obj, _PLAIN):
            return {"type": "value", "value": obj}
        if isinstance(obj, _dt.dtype):
            return {"type": "dtype", "name": obj.name}
        if isinstance(obj, _device_cls):
            return {"type": "device", "name": str(obj)}
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                items.append([_encode_key(k, path), self.encode(v, _join(path, k))])
            node = {"type": "dict", "items": items}
            if isinstance(obj, OrderedDict):
                node["ordered"] = True
            return node
        if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
            return {"type": type(obj).__name__,
                    "items": [self.encode(v, _join(path, i)) for i, v in enumerate(obj)]}
        raise TypeError(f"save: cannot store a value of type {type(obj).__name__} at {_where(path)}; "
                        f"devtensor.save stores {_WHAT} (it never pickles)")


def _join(path, k):
    return f"{path}.{k}" if path else str(k)


def _where(path):
    return repr(path) if path else "the top level"


def _encode_key(k, path):
    if isinstance(k, _PLAIN):
        return {"type": "value", "value": k}
    if type(k) is tuple:
        return {"type": "tuple", "items": [_encode_key(x, path) for x in k]}
    raise TypeError(f"save: cannot store a dict key of type {type(k).__name__} in {_where(path)}; keys "
                    "must be str, int, float, bool, None or tuples of these")


def _serialize(obj):
    enc = _Encoder()
    root = enc.encode(obj, "")
    meta = json.dumps({"format": _FORMAT, "version": _VERSION, "root": root}, separators=(",", ":"))
    return _stnp.save(enc.arrays, metadata={_META_KEY: meta})


# ---- save ----------------------------------------------------------------------------------------
def save(obj, f):
    """Save `obj` to `f` (a str / os.PathLike path, written atomically, or a binary file object)."""
    if isinstance(f, (str, os.PathLike)):
        _save_path(obj, os.fspath(f))
        return
    if not hasattr(f, "write"):
        raise TypeError(f"save: f must be a path (str or os.PathLike) or a binary file object, got {type(f).__name__}")
    if isinstance(f, io.TextIOBase) or "b" not in getattr(f, "mode", "b"):
        raise TypeError("save: the file object must be opened in binary mode ('wb')")
    f.write(_serialize(obj))
    if hasattr(f, "flush"):
        f.flush()


def _save_path(obj, path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: directory {directory!r} does not exist (saving {path!r})")
    tmp = tempfile.NamedTemporaryFile(dir=directory, prefix="." + os.path.basename(target) + ".",
                                      suffix=".tmp", delete=False)
    try:
        data = _serialize(obj)
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
        tmp.close()
        try:  # NamedTemporaryFile is 0600: give the checkpoint the mode a plain open() would
            mode = os.stat(target).st_mode & 0o777 if os.path.exists(target) else 0o666 & ~_umask()
            os.chmod(tmp.name, mode)
        except OSError:
            pass
        os.replace(tmp.name, target)
    except BaseException:
        tmp.close()
        try:
            os.unlink(tmp.name)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- load ----------------------------------------------------------------------------------------
def load(f, map_location=None, weights_only=True, **_ignored):
    """Load what save() wrote. map_location as torch.load: None (the saved devices), a device or
    str ('cpu', 'cuda:0', 'meta'), a dict {'cuda:0': 'cpu'} (saved device -> device; others kept),
    or a callable(tensor_on_cpu, saved_device_str) -> tensor (None means: restore as usual)."""
    if isinstance(f, (str, os.PathLike)):
        name = os.fspath(f)
        with open(name, "rb") as fh:
            data = fh.read()
    elif hasattr(f, "read"):
        name = getattr(f, "name", None) or f"<{type(f).__name__}>"
        data = f.read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("load: the file object must be opened in binary mode ('rb')")
        data = bytes(data)
    else:
        raise TypeError(f"load: f must be a path (str or os.PathLike) or a binary file object, got {type(f).__name__}")
    structure, header_len, header = _read_header(data, name)
    arrays = _read_arrays(data, name, header_len, header)
    return _Decoder(arrays, name, map_location).decode(structure["root"])


def _bad(name, what):
    return RuntimeError(f"load: {name!r} is not a valid devtensor checkpoint: {what}")


def _read_header(data, name):
    if data[:4] == b"PK\x03\x04":
        raise _bad(name, "it is a zip archive, as torch.save writes (a pickle inside); devtensor files are "
                         "safetensors with a devtensor structure. Load it with torch.load, or re-save it "
                         "with devtensor.save")
    if data[:1] == b"\x80" and len(data) > 1 and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise _bad(name, "it is a pickle file (legacy torch.save?); devtensor never unpickles")
    if len(data) < 8:
        raise _bad(name, f"the file is {len(data)} bytes long, too short for a safetensors header "
                         "(empty or truncated?)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise _bad(name, f"the safetensors header claims {n} bytes but only {len(data) - 8} follow "
                         "(truncated, or not a safetensors file)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _bad(name, f"the safetensors header is not valid JSON ({e}); the file is corrupted or not "
                         "a safetensors file") from None
    if not isinstance(header, dict):
        raise _bad(name, "the safetensors header is not a JSON object")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or _META_KEY not in meta:
        raise _bad(name, f"it is a safetensors file without devtensor metadata (no {_META_KEY!r} key); "
                         "load plain safetensors files with safetensors.numpy.load_file")
    try:
        structure = json.loads(meta[_META_KEY])
    except (TypeError, ValueError) as e:
        raise _bad(name, f"the devtensor metadata is not valid JSON ({e})") from None
    if not isinstance(structure, dict) or structure.get("format") != _FORMAT or "root" not in structure:
        raise _bad(name, "the devtensor metadata does not describe a devtensor checkpoint")
    if not isinstance(structure.get("version"), int) or structure["version"] > _VERSION:
        raise _bad(name, f"checkpoint format version {structure.get('version')!r} is newer than this "
                         f"devtensor supports ({_VERSION}); upgrade devtensor")
    return structure, n, header


def _read_arrays(data, name, n, header):
    body = len(data) - 8 - n
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            end = int(info["data_offsets"][1])
        except (TypeError, KeyError, IndexError, ValueError):
            raise _bad(name, f"tensor entry {key!r} in the header has no valid data_offsets") from None
        if end > body:
            raise _bad(name, f"tensor {key!r} ends at byte {end} of the data section but the file holds "
                             f"only {body} bytes of data (the file is truncated)")
    try:
        return _stnp.load(data)
    except Exception as e:  # safetensors raises SafetensorError and friends
        raise _bad(name, f"safetensors could not read it ({type(e).__name__}: {e})") from None


class _Decoder:
    def __init__(self, arrays, name, map_location):
        self.arrays = arrays
        self.name = name
        self.map_location = map_location
        self.loaded = {}  # key -> tensor (a tensor stored once loads as one object)

    def decode(self, node):
        try:
            kind = node["type"]
        except (TypeError, KeyError):
            raise _bad(self.name, f"malformed structure node {node!r}") from None
        if kind == "value":
            return node["value"]
        if kind == "tensor":
            return self.tensor(node)
        if kind == "dict":
            d = OrderedDict() if node.get("ordered") else {}
            for k, v in node["items"]:
                d[self.key(k)] = self.decode(v)
            return d
        if kind == "list":
            return [self.decode(v) for v in node["items"]]
        if kind == "tuple":
            return tuple(self.decode(v) for v in node["items"])
        if kind == "dtype":
            return _dt.as_dtype(node["name"])
        if kind == "device":
            return _device_cls(node["name"])
        raise _bad(self.name, f"unknown structure node type {kind!r}")

    def key(self, node):
        if node.get("type") == "tuple":
            return tuple(self.key(x) for x in node["items"])
        return node["value"]

    def tensor(self, node):
        from .ops.creation import empty, tensor

        key = node.get("key")
        if key is not None and key in self.loaded:
            return self.loaded[key]
        try:
            dtype = _dt.as_dtype(node["dtype"])
        except Exception:
            raise _bad(self.name, f"unknown dtype {node.get('dtype')!r} for tensor {key!r}") from None
        shape = tuple(node["shape"])
        saved = node["device"]
        rg = bool(node.get("requires_grad", False))
        if key is None:
            arr = None
        else:
            if key not in self.arrays:
                raise _bad(self.name, f"the structure names tensor {key!r} but the file has no such entry")
            arr = self.arrays[key]
            if node.get("storage") == "uint16":
                arr = arr.view(dtype.np)
            if arr.dtype != dtype.np or tuple(arr.shape) != shape:
                raise _bad(self.name, f"tensor {key!r} is {arr.dtype}{list(arr.shape)} in the file but the "
                                      f"structure says {dtype.name}{list(shape)}")
        ml = self.map_location
        if callable(ml) and not isinstance(ml, (str, _device_cls)):
            cpu = tensor(arr, dtype=dtype) if arr is not None else empty(shape, dtype=dtype, device="meta")
            out = ml(cpu, saved)
            if out is None:
                out = self.place(arr, shape, dtype, saved, saved)
            elif not isinstance(out, Tensor):
                raise TypeError(f"load: map_location callable returned {type(out).__name__}, expected a Tensor or None")
            if rg and out.is_leaf and out.dtype.is_floating_point and not out.requires_grad:
                out.requires_grad_(True)
        else:
            if ml is None:
                target = saved
            elif isinstance(ml, dict):
                target = ml.get(saved, saved)
                if isinstance(target, _device_cls):
                    target = str(target)
            else:
                target = ml
            out = self.place(arr, shape, dtype, saved, target)
            if rg:
                out.requires_grad_(True)
        if key is not None:
            self.loaded[key] = out
        return out

    def place(self, arr, shape, dtype, saved, target):
        from .ops.creation import empty, tensor

        try:
            dev = _resolve(target)
        except (RuntimeError, ValueError) as e:
            hint = " Pass map_location='cpu' to load it onto the CPU." if self.map_location is None else ""
            raise RuntimeError(f"load({self.name!r}): cannot restore a tensor saved on {saved} onto "
                               f"{target}: {e}.{hint}") from None
        if dev.type == "meta":
            return empty(shape, dtype=dtype, device=dev)
        if arr is None:
            raise RuntimeError(f"load({self.name!r}): a tensor was saved on the meta device and has no data; "
                               "load it with map_location='meta'")
        return tensor(arr, dtype=dtype, device=dev)
