"""devtensor.save / devtensor.load: checkpoints as ONE safetensors file, never pickle.

    dt.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, "ckpt.safetensors")
    ckpt = dt.load("ckpt.safetensors", map_location="cpu")

What can be saved: tensors (nn.Parameter stays a Parameter), and dicts (any order, OrderedDict kept),
lists and tuples nested to any depth of tensors and plain values (int, float, str, bool, None,
dt.dtype, dt.device). Dict keys may be str, int, float, bool, None or tuples of these, and keep their
type (an optimizer's state has int keys). Anything else is a TypeError naming where it sits.

The file: each tensor's bytes are one safetensors entry (C-contiguous host copy; bfloat16, which
safetensors' numpy front end does not know, is stored as its raw uint16 bits). The structure --
every container, plain value and, per tensor, its safetensors key, dtype, shape, device and
requires_grad -- is JSON under the metadata key "devtensor". Loading parses JSON and raw arrays
only: it never executes code, so `weights_only` is accepted for PyTorch compatibility and changes
nothing. A tensor seen twice in `obj` (the same object) is stored once and loads as one tensor;
two different views of one storage are stored (and load) independently.

Writes to a path are atomic: the bytes go to a new temporary file in the target's directory, which
is flushed, fsync'ed and os.replace'd onto the target (then the directory is fsync'ed). A failure
at any point removes the temporary file and leaves any previous checkpoint untouched. A file that
cannot be read back (truncated, corrupted, another format) raises CheckpointError naming the file.

A process killed mid-save (SIGKILL, OOM killer, node preemption) cannot remove its temporary file,
so the file names its writer: `.{target name}.{host}.{pid}.{random}.tmp`. The next save of the same
target (by any process) removes the temporaries whose writer is gone: written on this host, by a
process that no longer exists (os.kill(pid, 0) raises ProcessLookupError, or it is a zombie).
It never touches a temporary written on another host (ranks on other machines sharing the
filesystem) or by a live process, whose save may be in progress; a temporary carrying this
process's own pid is removed only if this process is not writing it (it was left by an earlier
process that had the same pid, as PID 1 of a restarted container). A dead writer whose pid is
already reused keeps its file until that pid is free again. (POSIX only: on Windows os.kill
cannot probe a process, and nothing is removed.)
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import socket
import struct
import threading
from collections import OrderedDict

import numpy as np
import safetensors.numpy as _stnp

from . import dtypes as _dt
from .device import device as _device_cls
from .device import resolve as _resolve
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]

_META_KEY = "devtensor"
_FORMAT = "devtensor.checkpoint"
_VERSION = 1
_PLAIN = (str, bool, int, float, type(None))
_WHAT = "tensors, dicts, lists, tuples, int, float, str, bool, None, devtensor.dtype and devtensor.device"


class CheckpointError(RuntimeError):
    """A file that is not a readable devtensor checkpoint. A RuntimeError, as torch.load raises."""


# ---- encoding ------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self):
        self.arrays = {}  # safetensors key -> C-contiguous host array
        self.seen = {}  # id(tensor) -> key: a tensor reachable twice is stored once
        self.open = set()  # ids of the containers being encoded: a container inside itself is a cycle

    def _key(self, path):
        base = path or "tensor"
        key, n = base, 1
        while key in self.arrays or key == "__metadata__":  # "a.b" can come from {"a.b"} and {"a": {"b"}}
            key = f"{base}#{n}"
            n += 1
        return key

    def tensor(self, t, path):
        node = {"type": "tensor", "dtype": t.dtype.name, "shape": list(t.shape), "device": str(t.device),
                "requires_grad": bool(t.requires_grad)}
        if _is_parameter(t):
            node["parameter"] = True
        if t.device.type == "meta":
            node["key"] = None  # a meta tensor has no data to store
            return node
        if id(t) in self.seen:
            node["key"] = self.seen[id(t)]
            return node
        host = _contiguous(np.asarray(t._host()))
        if t.dtype is _dt.bfloat16:
            host = host.view(np.uint16)
            node["storage"] = "uint16"
        elif t.dtype is _dt.complex128:  # safetensors has complex64 (C64) but no complex128: float64 pairs
            host = host.reshape(host.shape + (1,)).view(np.float64)
            node["storage"] = "float64_pairs"
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
        if isinstance(obj, dict) or type(obj) in (list, tuple):
            if id(obj) in self.open:
                raise ValueError(f"save: the {type(obj).__name__} at {_where(path)} contains itself; "
                                 "a checkpoint cannot hold a cycle")
            self.open.add(id(obj))
            try:
                return self.container(obj, path)
            finally:
                self.open.discard(id(obj))
        hint = "; save its .state_dict() instead" if callable(getattr(obj, "state_dict", None)) else ""
        raise TypeError(f"save: cannot store a value of type {type(obj).__name__} at {_where(path)}{hint}; "
                        f"devtensor.save stores {_WHAT} (it never pickles)")

    def container(self, obj, path):
        if isinstance(obj, dict):
            items = [[_encode_key(k, path), self.encode(v, _join(path, k))] for k, v in obj.items()]
            node = {"type": "dict", "items": items}
            if isinstance(obj, OrderedDict):
                node["ordered"] = True
            return node
        return {"type": type(obj).__name__, "items": [self.encode(v, _join(path, i)) for i, v in enumerate(obj)]}


def _contiguous(a):
    # not np.ascontiguousarray alone: it turns a 0-d array into shape (1,)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(a.shape)


def _is_parameter(t):
    from .nn.parameter import Parameter  # late: nn imports much of devtensor

    return isinstance(t, Parameter)


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
    mode = getattr(f, "mode", "b")  # a str for open() files, an int for gzip.GzipFile
    if isinstance(f, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode):
        raise TypeError("save: the file object must be opened in binary mode ('wb')")
    f.write(_serialize(obj))
    if hasattr(f, "flush"):
        f.flush()


def _save_path(obj, path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    data = _serialize(obj)  # first: an object that cannot be saved must not even create a temporary file
    target = os.path.realpath(path)  # through a symlink, as open(path, "wb") would write
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: directory {directory!r} does not exist (saving {path!r})")
    _remove_stale_temps(target)
    tmp, fd = _create_temp(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _copy_mode(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        _WRITING.discard(tmp)
    _fsync_dir(directory)


# ---- temporary files: named after their writer, so a later save can remove a dead writer's -------
_WRITING = set()  # this process's temporaries being written now (by any thread)
_WRITING_LOCK = threading.Lock()  # creation and the stale scan: a scan never sees a file not yet registered
_NAME_MAX = 255  # bytes in one file name (Linux, macOS, Windows)


def _host_tag(host=None):
    """This machine's name as it appears in temporary file names: [A-Za-z0-9-] only (no dots: the
    name is parsed by splitting on them). A name that had to be changed or shortened gets a hash of
    the original, so two hosts do not share a tag."""
    host = socket.gethostname() if host is None else host
    tag = re.sub(r"[^A-Za-z0-9-]", "-", host)
    if tag != host or not tag or len(tag) > 40:
        tag = f"{tag[:32]}-{hashlib.sha256(host.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
    return tag


def _temp_prefix(base):
    """`.{base}.`, or `.{hash of base}.` where the base is too long for a temporary's name to fit."""
    prefix = f".{base}."
    if len(os.fsencode(prefix)) + 80 > _NAME_MAX:  # 80: host tag, pid, random part and ".tmp"
        prefix = f".{hashlib.sha256(os.fsencode(base)).hexdigest()[:24]}."
    return prefix


def _create_temp(target):
    """A new hidden file next to `target`, `.{base}.{host}.{pid}.{random}.tmp`, created with mode 0o666
    so the umask applies as for a plain open() (tempfile's files are 0600; reading the umask means
    setting it, which is not thread-safe). Registered in _WRITING until _save_path is done with it."""
    directory, base = os.path.split(target)
    head = f"{_temp_prefix(base)}{_host_tag()}.{os.getpid()}."
    for _ in range(100):
        tmp = os.path.join(directory, f"{head}{secrets.token_hex(4)}.tmp")
        with _WRITING_LOCK:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            except FileExistsError:
                continue
            _WRITING.add(tmp)
        return tmp, fd
    raise FileExistsError(f"save: could not create a temporary file next to {target!r}")


def _remove_stale_temps(target):
    """Remove the temporaries of `target` left by dead writers on this host (see the module docstring).
    Best effort: a file that cannot be listed or removed is left alone, and the save goes on."""
    if os.name != "posix":
        return
    directory, base = os.path.split(target)
    prefix, host, me = _temp_prefix(base), _host_tag(), os.getpid()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        parts = name[len(prefix):-len(".tmp")].split(".")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue  # another target's temporary, another host's, or not ours at all
        pid, path = int(parts[1]), os.path.join(directory, name)
        with _WRITING_LOCK:
            if pid <= 0 or path in _WRITING or (pid != me and _alive(pid)):
                continue
            try:
                os.unlink(path)
            except OSError:  # removed by another saver meanwhile, or not ours to remove
                pass


def _alive(pid):
    """Whether process `pid` exists on this host (os.kill(pid, 0): ProcessLookupError means gone,
    PermissionError means alive under another user). A zombie -- killed, not yet reaped by its
    parent -- counts as gone; anything unclear counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError and anything unexpected: keep the file
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2:][:1] != b"Z"  # the state field follows "(command name) "
    except (OSError, ValueError):
        return True


def _copy_mode(target, tmp):
    # overwriting a checkpoint keeps its permissions, as writing into it would
    try:
        os.chmod(tmp, os.stat(target).st_mode & 0o7777)
    except OSError:
        pass


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


# ---- load: reading and checking the file ---------------------------------------------------------
def load(f, map_location=None, weights_only=True, **_ignored):
    """Load what save() wrote. map_location as torch.load: None (the saved devices), a device or
    str ('cpu', 'cuda:0', 'meta'), a dict {'cuda:0': 'cpu'} (saved device -> device; others kept),
    or a callable(tensor_on_cpu, saved_device_str) -> tensor (None means: restore as usual).
    Other torch.load keywords (pickle_module, mmap, ...) are accepted and ignored."""
    data, name = _read_all(f)
    structure, header_len, header = _read_header(data, name)
    arrays = _read_arrays(data, name, header_len, header)
    return _Decoder(arrays, name, map_location).decode(structure["root"])


def _read_all(f):
    if isinstance(f, (str, os.PathLike)):
        name = os.fspath(f)
        with open(name, "rb") as fh:
            return fh.read(), name
    if not hasattr(f, "read"):
        raise TypeError(f"load: f must be a path (str or os.PathLike) or a binary file object, got {type(f).__name__}")
    name = getattr(f, "name", None) or f"<{type(f).__name__}>"
    data = f.read()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("load: the file object must be opened in binary mode ('rb')")
    return bytes(data), str(name)


def _bad(name, what):
    return CheckpointError(f"load: {name!r} is not a valid devtensor checkpoint: {what}")


def _read_header(data, name):
    _reject_other_formats(data, name)
    if len(data) < 8:
        raise _bad(name, f"the file is {len(data)} bytes long, too short for a safetensors header "
                         "(empty or truncated?)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise _bad(name, f"the safetensors header claims {n} bytes but only {len(data) - 8} follow "
                         "(truncated, or not a safetensors file)")
    header = _json(data[8:8 + n], name, "the safetensors header")
    if not isinstance(header, dict):
        raise _bad(name, "the safetensors header is not a JSON object")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or _META_KEY not in meta:
        raise _bad(name, f"it is a safetensors file without devtensor metadata (no {_META_KEY!r} key); "
                         "load plain safetensors files with safetensors.numpy.load_file")
    structure = _json(meta[_META_KEY], name, "the devtensor metadata")
    if not isinstance(structure, dict) or structure.get("format") != _FORMAT or "root" not in structure:
        raise _bad(name, "the devtensor metadata does not describe a devtensor checkpoint")
    version = structure.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad(name, f"the devtensor metadata has no valid format version ({version!r})")
    if version > _VERSION:
        raise _bad(name, f"checkpoint format version {version} is newer than this devtensor supports "
                         f"({_VERSION}); upgrade devtensor")
    return structure, n, header


def _reject_other_formats(data, name):
    # the two formats a PyTorch user is likely to hand us, named so the fix is obvious
    if data[:4] == b"PK\x03\x04":
        raise _bad(name, "it is a zip archive, as torch.save writes (a pickle inside); devtensor files are "
                         "safetensors with a devtensor structure. Load it with torch.load, or re-save it "
                         "with devtensor.save")
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise _bad(name, "it is a pickle file (legacy torch.save?); devtensor never unpickles")


def _json(raw, name, what):
    try:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError) as e:
        raise _bad(name, f"{what} is not valid JSON ({type(e).__name__}: {e}); the file is corrupted or "
                         "not a devtensor checkpoint") from None


def _read_arrays(data, name, n, header):
    # safetensors' own message for a short file is terse; say "truncated" and which tensor first
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


# ---- load: rebuilding the object -----------------------------------------------------------------
class _Decoder:
    """Rebuilds the saved object from the JSON structure. The structure comes from the file, so every
    field is checked: a malformed node is a CheckpointError, never a KeyError from deep inside."""

    def __init__(self, arrays, name, map_location):
        self.arrays = arrays
        self.name = name
        self.map_location = map_location
        self.loaded = {}  # key -> tensor (a tensor stored once loads as one object)

    def field(self, node, name, types):
        if not isinstance(node, dict) or name not in node or not isinstance(node[name], types):
            raise _bad(self.name, f"malformed structure node {_short(node)} (bad or missing {name!r})")
        return node[name]

    def decode(self, node):
        try:
            return self._decode(node)
        except RecursionError:
            raise _bad(self.name, "the structure is nested too deeply") from None

    def _decode(self, node):
        kind = self.field(node, "type", str)
        if kind == "value":
            return self.field(node, "value", _PLAIN)
        if kind == "tensor":
            return self.tensor(node)
        if kind == "dict":
            d = OrderedDict() if node.get("ordered") else {}
            for item in self.field(node, "items", list):
                if not isinstance(item, list) or len(item) != 2:
                    raise _bad(self.name, f"malformed dict item {_short(item)}")
                d[self.key(item[0])] = self._decode(item[1])
            return d
        if kind == "list":
            return [self._decode(v) for v in self.field(node, "items", list)]
        if kind == "tuple":
            return tuple(self._decode(v) for v in self.field(node, "items", list))
        if kind == "dtype":
            return self.dtype(self.field(node, "name", str))
        if kind == "device":
            try:
                return _device_cls(self.field(node, "name", str))
            except (RuntimeError, ValueError) as e:
                raise _bad(self.name, f"bad device in the structure ({e})") from None
        raise _bad(self.name, f"unknown structure node type {kind!r}")

    def key(self, node):
        if self.field(node, "type", str) == "tuple":
            return tuple(self.key(x) for x in self.field(node, "items", list))
        return self.field(node, "value", _PLAIN)

    def dtype(self, name):
        try:
            return _dt.as_dtype(name)
        except Exception:
            raise _bad(self.name, f"unknown dtype {name!r}") from None

    def tensor(self, node):
        key = node.get("key")
        if key is not None and key in self.loaded:
            return self.loaded[key]
        dtype = self.dtype(self.field(node, "dtype", str))
        shape = self.field(node, "shape", list)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise _bad(self.name, f"tensor {key!r} has a bad shape {shape!r} in the structure")
        shape = tuple(shape)
        saved = self.field(node, "device", str)
        arr = None if key is None else self.array(node, key, dtype, shape)
        rg = bool(node.get("requires_grad", False)) and dtype._cat >= 2  # (floating or complex)
        out = self.placed(arr, shape, dtype, saved, rg)
        if node.get("parameter"):
            from .nn.parameter import Parameter

            out = Parameter(out, requires_grad=rg)
        if key is not None:
            self.loaded[key] = out
        return out

    def array(self, node, key, dtype, shape):
        if not isinstance(key, str) or key not in self.arrays:
            raise _bad(self.name, f"the structure names tensor {key!r} but the file has no such entry")
        arr = self.arrays[key]
        if node.get("storage") == "uint16" and arr.dtype == np.uint16:
            arr = arr.view(dtype.np)
        elif node.get("storage") == "float64_pairs" and arr.dtype == np.float64 and arr.shape[-1:] == (2,):
            arr = np.ascontiguousarray(arr).view(np.complex128)[..., 0]
        if arr.dtype != dtype.np or tuple(arr.shape) != shape:
            raise _bad(self.name, f"tensor {key!r} is {arr.dtype}{list(arr.shape)} in the file but the "
                                  f"structure says {dtype.name}{list(shape)}")
        return arr

    def placed(self, arr, shape, dtype, saved, rg):
        """The tensor on the device map_location picks (the device it was saved on by default)."""
        ml = self.map_location
        if callable(ml) and not isinstance(ml, (str, _device_cls)):
            return self.placed_by_callable(arr, shape, dtype, saved, rg)
        if ml is None:
            target = saved
        elif isinstance(ml, dict):
            target = ml.get(saved, saved)
        else:
            target = ml
        out = self.place(arr, shape, dtype, saved, str(target) if isinstance(target, _device_cls) else target)
        return out.requires_grad_(True) if rg else out

    def placed_by_callable(self, arr, shape, dtype, saved, rg):
        from .ops.creation import empty, tensor

        cpu = tensor(arr, dtype=dtype) if arr is not None else empty(shape, dtype=dtype, device="meta")
        out = self.map_location(cpu, saved)
        if out is None:
            out = self.place(arr, shape, dtype, saved, saved)
        elif not isinstance(out, Tensor):
            raise TypeError(f"load: map_location callable returned {type(out).__name__}, expected a Tensor or None")
        if rg and out.is_leaf and out.dtype._cat >= 2 and not out.requires_grad:
            out.requires_grad_(True)
        return out

    def place(self, arr, shape, dtype, saved, target):
        from .ops.creation import empty, tensor

        try:
            dev = _resolve(target)
        except (RuntimeError, ValueError, TypeError) as e:
            hint = " Pass map_location='cpu' to load it onto the CPU." if self.map_location is None else ""
            raise RuntimeError(f"load({self.name!r}): cannot restore a tensor saved on {saved} onto "
                               f"{target}: {str(e).rstrip('.')}.{hint}") from None
        if dev.type == "meta":
            return empty(shape, dtype=dtype, device=dev)
        if arr is None:
            raise RuntimeError(f"load({self.name!r}): a tensor was saved on the meta device and has no data; "
                               "load it with map_location='meta'")
        return tensor(arr, dtype=dtype, device=dev)


def _short(node, limit=80):
    text = repr(node)
    return text if len(text) <= limit else text[:limit] + "..."
