"""shardopt.save / shardopt.load (torch.save / torch.load) and the weights-only unpickler.

File format (a zip archive, stored uncompressed, like torch's but not torch-compatible):

    archive/format      b"shardopt-save 1\\n" -- magic and version
    archive/byteorder   b"little"             -- storages are little-endian
    archive/data.pkl    the object, pickled (protocol ``pickle_protocol``); every Tensor is a
                        persistent id ("tensor", storage key, dtype, storage numel, location,
                        storage offset, shape, strides, requires_grad, class) -- never a
                        pickled global -- so a weights-only load needs no code to rebuild it
    archive/data/<key>  one storage's raw bytes (all of it, not only the viewed part)

Tensors that share a storage in one ``save`` point at one storage record, so after ``load``
they are views of one storage again.  ShardedTensors pickle through their own
``__getstate__``/``__setstate__`` (shards + metadata; loading checks ranks and world sizes
against the default process group, or the one set by
``shardopt.sharded_tensor.load_with_process_group``).

``load(..., weights_only=True)`` (the default, as torch >= 2.6) unpickles with an allowlist of
globals: containers, numbers, strings, shardopt dtypes/devices/Size and the sharding data
types.  Anything else raises ``pickle.UnpicklingError`` naming the global; extend the list
with :func:`add_safe_globals` or the :class:`safe_globals` context manager.

Saving to a path is atomic: the archive is written to a temporary file in the target's
directory, fsynced, renamed over the target and the directory fsynced, so a crash leaves
either the old file or the new one, and a failed save leaves no temporary file.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import secrets
import sys
import zipfile
from typing import Any, Callable

import numpy as np

from . import _C
from ._tensor import Size, Tensor

__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals",
           "safe_globals", "DEFAULT_PROTOCOL"]

DEFAULT_PROTOCOL = 2
_MAGIC = b"shardopt-save 1\n"
_PREFIX = "archive/"
_DTYPES = ("float32", "float64", "float16", "bfloat16", "int32", "int64", "bool", "complex64",
           "complex128")
_UINT_OF_SIZE = {1: "u1", 2: "u2", 4: "u4", 8: "u8"}

# ----------------------------------------------------------------------------- save


def _location(t: Tensor) -> str:
    d = t.device
    return "cpu" if d.type == "cpu" else f"cuda:{d.index if d.index is not None else 0}"


def _storage_bytes(t: Tensor, numel: int):
    """The whole storage under `t` as little-endian bytes (a host copy for CUDA)."""
    base = t.detach() if hasattr(t, "detach") else t._alias()
    flat = base.as_strided((numel,), (1,), 0)
    if flat.device.type != "cpu":
        flat = flat.cpu()
    raw = flat.contiguous()._raw_bytes()
    if sys.byteorder != "little" and t.element_size() > 1:
        # complex swaps each of its two float halves
        width = _UINT_OF_SIZE[t.element_size() // (2 if t.dtype.is_complex else 1)]
        raw = np.frombuffer(raw, dtype=">" + width).astype("<" + width).tobytes()
    return raw


class _Pickler(pickle.Pickler):
    def __init__(self, file, protocol: int, records: dict):
        super().__init__(file, protocol)
        self._records = records  # storage key -> (tensor holding it, numel)
        self._keys: dict = {}    # (id(storage), dtype name) -> key

    def persistent_id(self, obj):
        if not isinstance(obj, Tensor):
            return None
        storage = obj._storage
        dtype = obj.dtype._name
        ident = (id(storage), dtype)
        key = self._keys.get(ident)
        if key is None:
            key = str(len(self._keys))
            self._keys[ident] = key
            self._records[key] = (obj, storage.nbytes() // obj.element_size())
        numel = self._records[key][1]
        kind = "Parameter" if _is_parameter(obj) else "Tensor"
        return ("tensor", key, dtype, numel, _location(obj), obj.storage_offset(),
                tuple(obj.shape), tuple(obj.stride()), bool(obj.requires_grad), kind)


def _is_parameter(obj) -> bool:
    from .nn.parameter import Parameter  # nn imports shardopt.*; resolve lazily
    return isinstance(obj, Parameter)


def _write_archive(obj: Any, fileobj, protocol: int) -> None:
    records: dict = {}
    buf = io.BytesIO()
    _Pickler(buf, protocol, records).dump(obj)
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(_PREFIX + "format", _MAGIC)
        zf.writestr(_PREFIX + "byteorder", b"little")
        zf.writestr(_PREFIX + "data.pkl", buf.getvalue())
        for key, (t, numel) in records.items():
            zf.writestr(_PREFIX + "data/" + key, _storage_bytes(t, numel))


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds: the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(directory: str, base: str):
    """A new file next to the target, created with mode 0o666 minus the umask (as a plain
    open() would: mkstemp's 0o600 would make the renamed checkpoint private)."""
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"save(): could not create a temporary file in {directory!r}")


def save(obj: Any, f, pickle_module=None, pickle_protocol: int = DEFAULT_PROTOCOL) -> None:
    """Save ``obj`` (tensors, ShardedTensors, state dicts, containers, numbers, strings)
    to ``f``.

    Args:
        obj: the object to save.
        f: a path (str or os.PathLike; written atomically) or a writable binary file object.
        pickle_module: must be None or the ``pickle`` module (accepted for torch's signature).
        pickle_protocol (int): pickle protocol, 2 or higher. Default: 2.
    """
    if pickle_module is not None and pickle_module is not pickle:
        raise ValueError("save(): pickle_module must be None or the standard pickle module")
    if not isinstance(pickle_protocol, int) or isinstance(pickle_protocol, bool) or not (
            2 <= pickle_protocol <= pickle.HIGHEST_PROTOCOL):
        raise ValueError(f"save(): pickle_protocol must be an int in [2, "
                         f"{pickle.HIGHEST_PROTOCOL}], got {pickle_protocol!r}")
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise IsADirectoryError(f"save(): {path!r} is a directory")
        fd, tmp = _create_temp(directory, os.path.basename(path))
        try:
            with os.fdopen(fd, "wb") as out:
                _write_archive(obj, out, pickle_protocol)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(directory)
        return
    if not hasattr(f, "write"):
        raise TypeError(f"save(): f must be a path (str or os.PathLike) or a writable binary "
                        f"file object, got {type(f).__name__}")
    _write_archive(obj, f, pickle_protocol)
    if hasattr(f, "flush"):
        f.flush()


# ----------------------------------------------------------------------------- safe globals

_user_safe: dict = {}  # (module, name) -> object


def _qualified(obj) -> tuple:
    return (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None) or
            getattr(obj, "__name__", None))


def _default_safe() -> dict:
    """The built-in allowlist: (module, name) as pickle writes it -> object."""
    from . import _layout, sharded_tensor, sharding_spec
    from .sharded_tensor import ShardedTensor
    from .sharded_tensor import metadata as st_meta

    table = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("collections", "Counter"): collections.Counter,
        ("_codecs", "encode"): __import__("_codecs").encode,  # bytes under protocol 2
    }
    for b in (dict, list, tuple, set, frozenset, bytearray, bytes, str, int, float, bool,
              complex, slice, range):
        table[("builtins", b.__name__)] = b
        table[("__builtin__", b.__name__)] = b  # protocol 2 writes Python 2 names
    for name in _DTYPES:
        table[("shardopt._C", name)] = getattr(_C, name)
    for name in ("strided", "sparse_coo", "contiguous_format", "channels_last",
                 "preserve_format"):
        table[("shardopt._layout", name)] = getattr(_layout, name)
    # the sharding layer's data types (ShardedTensor, Shard, metadata, specs...): every class
    # its packages export, so a ShardedTensor pickled by their __getstate__ loads back
    classes = [_C.device, Size, ShardedTensor, _C.ShardedTensorBase, _C.Shard, _C.ShardMetadata,
               _C._remote_device, st_meta.ShardedTensorMetadata, st_meta.TensorProperties,
               st_meta.MEM_FORMAT_ENCODING]
    for mod in (sharded_tensor, sharding_spec, st_meta):
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name, None)
            if isinstance(obj, type):
                classes.append(obj)
    for cls in classes:
        table[_qualified(cls)] = cls  # what pickle writes: __module__, __qualname__
    return table


def add_safe_globals(safe_globals: list) -> None:
    """Allow these globals in ``load(weights_only=True)``.

    Args:
        safe_globals (list): classes/functions, or ``(obj, "module.name")`` pairs for an
            object pickled under another name.
    """
    if not isinstance(safe_globals, (list, tuple)):
        raise TypeError(f"add_safe_globals(): expected a list, got {type(safe_globals).__name__}")
    for entry in safe_globals:
        if isinstance(entry, tuple):
            if len(entry) != 2 or not isinstance(entry[1], str) or "." not in entry[1]:
                raise ValueError("add_safe_globals(): a tuple entry must be (obj, "
                                 f"'module.name'), got {entry!r}")
            obj, full = entry
            module, _, name = full.rpartition(".")
            _user_safe[(module, name)] = obj
        else:
            module, name = _qualified(entry)
            if module is None or name is None:
                raise TypeError(f"add_safe_globals(): {entry!r} has no __module__/__qualname__; "
                                "pass (obj, 'module.name')")
            _user_safe[(module, name)] = entry


def get_safe_globals() -> list:
    """The globals added by :func:`add_safe_globals` (objects, or (obj, name) pairs)."""
    out = []
    for (module, name), obj in _user_safe.items():
        out.append(obj if _qualified(obj) == (module, name) else (obj, f"{module}.{name}"))
    return out


def clear_safe_globals() -> None:
    """Forget every global added by :func:`add_safe_globals`."""
    _user_safe.clear()


class safe_globals:
    """Context manager: ``add_safe_globals(globals)`` for the duration of the block."""

    def __init__(self, safe_globals: list):
        self.safe_globals = safe_globals

    def __enter__(self):
        self._saved = dict(_user_safe)
        add_safe_globals(self.safe_globals)

    def __exit__(self, *exc):
        _user_safe.clear()
        _user_safe.update(self._saved)


_WEIGHTS_ONLY_HELP = (
    "Weights only load failed. This file can still be loaded, to do so you have two options, "
    "do those steps only if you trust the source of the checkpoint. \n\t(1) Re-running "
    "`shardopt.load` with `weights_only` set to `False` will likely succeed, but it can result "
    "in arbitrary code execution. Do it only if you got the file from a trusted source.\n\t(2) "
    "Alternatively, to load with `weights_only=True` please check the recommended steps in the "
    "following error message.\n\tWeightsUnpickler error: ")


class _WeightsOnlyUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only allowlisted globals (no import, no attribute walk)."""

    def __init__(self, file, persistent_load):
        super().__init__(file)
        self._persistent = persistent_load
        self._table = _default_safe()
        self._table.update(_user_safe)

    def find_class(self, module, name):
        obj = self._table.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(
                _WEIGHTS_ONLY_HELP + f"Unsupported global: GLOBAL {module}.{name} was not an "
                "allowed global by default. Please use "
                f"`shardopt.serialization.add_safe_globals([{name}])` or the "
                f"`shardopt.serialization.safe_globals([{name}])` context manager to allowlist "
                "this global if you trust this class/function.")
        return obj

    def persistent_load(self, pid):
        return self._persistent(pid)


class _FullUnpickler(pickle.Unpickler):
    def __init__(self, file, persistent_load):
        super().__init__(file)
        self._persistent = persistent_load

    def persistent_load(self, pid):
        return self._persistent(pid)


# ----------------------------------------------------------------------------- load


def _as_device(x, what: str):
    if isinstance(x, _C.device):
        return x
    if isinstance(x, str):
        try:
            return _C.device(x)
        except Exception as e:
            raise ValueError(f"load(): invalid {what} {x!r}: {e}") from None
    raise TypeError(f"load(): {what} must be a str or shardopt.device, got {type(x).__name__}")


def _cuda_check(dev, location: str):
    if dev.type != "cuda":
        return
    from . import cuda
    if not cuda.is_available():
        raise RuntimeError(
            f"Attempting to deserialize object on a CUDA device ({location}) but "
            "shardopt.cuda.is_available() is False. If you are running on a CPU-only machine, "
            "please use shardopt.load with map_location=shardopt.device('cpu') to map your "
            "storages to the CPU.")
    n = cuda.device_count()
    idx = dev.index if dev.index is not None else 0
    if idx >= n:
        raise RuntimeError(
            f"Attempting to deserialize object on CUDA device {idx} but "
            f"shardopt.cuda.device_count() is {n}. Please use shardopt.load with map_location "
            "to map your storages to an existing device.")


class _Loader:
    """persistent_load for one archive: storages are read and placed once, then viewed."""

    def __init__(self, zf: zipfile.ZipFile, name: str, map_location):
        self.zf = zf
        self.name = name
        self.map_location = map_location
        self.storages: dict = {}
        self.error = None

    def _bad(self, msg: str):
        return RuntimeError(f"load(): {self.name} is not a valid shardopt checkpoint: {msg}")

    def _place(self, base: Tensor, location: str) -> Tensor:
        ml = self.map_location
        if ml is None:
            target = location
        elif isinstance(ml, (str, _C.device)):
            target = ml
        elif isinstance(ml, dict):
            target = ml.get(location, location)
        elif callable(ml):
            res = ml(base, location)
            if res is not None:
                if not isinstance(res, Tensor):
                    raise TypeError("load(): map_location callable must return a Tensor or "
                                    f"None, got {type(res).__name__}")
                return res
            target = location
        else:
            raise TypeError("load(): map_location must be None, a str, a shardopt.device, a "
                            f"dict or a callable, got {type(ml).__name__}")
        dev = _as_device(target, "map_location")
        _cuda_check(dev, str(target))
        return base if dev.type == "cpu" else base.to(dev)

    def _storage(self, key: str, dtype_name: str, numel: int, location: str) -> Tensor:
        cached = self.storages.get(key)
        if cached is not None:
            return cached
        try:
            raw = self.zf.read(_PREFIX + "data/" + key)
        except KeyError:
            raise self._bad(f"storage record {key!r} is missing") from None
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise self._bad(f"storage record {key!r} is unreadable ({e})") from None
        dtype = getattr(_C, dtype_name)
        itemsize = _C.empty((0,), dtype=dtype).element_size()
        if len(raw) != numel * itemsize:
            raise self._bad(f"storage record {key!r} has {len(raw)} bytes, expected "
                            f"{numel * itemsize}")
        if sys.byteorder != "little" and itemsize > 1:
            width = _UINT_OF_SIZE[itemsize // (2 if dtype.is_complex else 1)]
            raw = np.frombuffer(raw, dtype="<" + width).astype(">" + width).tobytes()
        base = _C._from_bytes(raw, dtype, (numel,))
        base = self._place(base, location)
        self.storages[key] = base
        return base

    def __call__(self, pid):
        try:
            return self._tensor(pid)
        except BaseException as e:
            self.error = e  # raised as is by _load_from, not reported as corrupted pickle
            raise

    def _tensor(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 10 and pid[0] == "tensor"):
            raise pickle.UnpicklingError(f"load(): unknown persistent id {pid!r:.200}")
        _, key, dtype_name, numel, location, offset, shape, stride, requires_grad, kind = pid
        if dtype_name not in _DTYPES or not isinstance(key, str) or kind not in (
                "Tensor", "Parameter"):
            raise self._bad(f"bad tensor record {pid!r:.200}")
        if not isinstance(location, str) or not (
                location == "cpu" or location.startswith("cuda")):
            raise self._bad(f"bad tensor location {location!r:.100}")
        ints = [numel, offset, *shape, *stride]
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ints) or \
                numel < 0 or offset < 0 or any(s < 0 for s in shape):
            raise self._bad(f"bad tensor geometry {pid!r:.200}")
        if len(shape) != len(stride):
            raise self._bad("tensor shape and strides differ in length")
        if all(s > 0 for s in shape):
            last = offset + sum((n - 1) * st for n, st in zip(shape, stride))
            if any(st < 0 for st in stride) or last >= numel:
                raise self._bad(f"tensor view exceeds its storage ({pid!r:.200})")
        base = self._storage(key, dtype_name, numel, location)
        t = base.as_strided(tuple(shape), tuple(stride), offset)
        if kind == "Parameter":
            from .nn.parameter import Parameter
            return Parameter(t, requires_grad)
        if requires_grad:
            t.requires_grad_(True)
        return t


def _open_zip(f, name: str) -> zipfile.ZipFile:
    head = f.read(4)
    if len(head) == 0:
        raise EOFError(f"load(): {name} is empty")
    if head != b"PK\x03\x04":
        raise RuntimeError(f"load(): {name} is not a shardopt checkpoint (bad magic "
                           f"{head!r}; expected a zip archive written by shardopt.save)")
    f.seek(-4, io.SEEK_CUR)
    try:
        zf = zipfile.ZipFile(f, "r")
    except zipfile.BadZipFile as e:
        raise RuntimeError(f"load(): {name} is truncated or corrupted ({e})") from None
    try:
        magic = zf.read(_PREFIX + "format")
    except KeyError:
        zf.close()
        raise RuntimeError(f"load(): {name} is a zip archive but not a shardopt checkpoint "
                           "(no archive/format record)") from None
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        zf.close()
        raise RuntimeError(f"load(): {name} is truncated or corrupted ({e})") from None
    if magic != _MAGIC:
        zf.close()
        raise RuntimeError(f"load(): {name} has an unsupported format record {magic[:40]!r} "
                           f"(this shardopt reads {_MAGIC!r})")
    return zf


def load(f, map_location=None, pickle_module=None, *, weights_only: bool = True,
         **pickle_load_args) -> Any:
    """Load an object saved by :func:`save`.

    Args:
        f: a path (str or os.PathLike) or a readable binary file object.
        map_location: where to put tensors: None (where they were saved), a device or device
            string (all of them), a dict mapping saved locations to new ones (``{"cuda:1":
            "cuda:0"}``), or ``callable(storage, location)`` returning a Tensor (or None for
            the default placement); ``storage`` is the whole storage as a 1-D CPU tensor.
        pickle_module: must be None or the ``pickle`` module.
        weights_only (bool): load through the restricted unpickler (default True).
    """
    if pickle_module is not None and pickle_module is not pickle:
        raise ValueError("load(): pickle_module must be None or the standard pickle module")
    if pickle_load_args:
        raise TypeError(f"load(): unexpected keyword arguments {sorted(pickle_load_args)}")
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        with open(path, "rb") as fh:
            return _load_from(fh, repr(path), map_location, weights_only)
    if not hasattr(f, "read"):
        raise TypeError(f"load(): f must be a path (str or os.PathLike) or a readable binary "
                        f"file object, got {type(f).__name__}")
    if not (hasattr(f, "seek") and getattr(f, "seekable", lambda: True)()):
        f = io.BytesIO(f.read())
    return _load_from(f, "the file object", map_location, weights_only)


def _load_from(fh, name: str, map_location, weights_only: bool):
    zf = _open_zip(fh, name)
    with zf:
        try:
            data = zf.read(_PREFIX + "data.pkl")
        except KeyError:
            raise RuntimeError(f"load(): {name} has no archive/data.pkl record") from None
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise RuntimeError(f"load(): {name} is truncated or corrupted ({e})") from None
        loader = _Loader(zf, name, map_location)
        cls = _WeightsOnlyUnpickler if weights_only else _FullUnpickler
        unpickler = cls(io.BytesIO(data), loader)
        try:
            return unpickler.load()
        except Exception as e:
            if e is loader.error:
                raise
            if isinstance(e, pickle.UnpicklingError):
                if weights_only and str(e).startswith("Weights only load failed"):
                    raise
                raise pickle.UnpicklingError(f"load(): {name}: {e}") from e
            if isinstance(e, (EOFError, ValueError, IndexError)):
                raise RuntimeError(f"load(): {name}: corrupted pickle data "
                                   f"({type(e).__name__}: {e})") from e
            raise
