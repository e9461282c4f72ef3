"""The checkpoint's metadata: what ``metadata.json`` holds, how it is checked.

A checkpoint is a directory::

    <checkpoint_id>/
        metadata.json        written last, by rank 0: its presence commits the checkpoint
        data-<rank>.bin      raw little-endian bytes of the chunks rank <rank> held

``metadata.json`` (format "shardopt.distributed.checkpoint", version 1)::

    {"format": "shardopt.distributed.checkpoint", "version": 1, "byte_order": "little",
     "world_size": N,
     "files":   {"data-0.bin": {"size": <bytes>}, ...},
     "tensors": {"<key>": {"shape": [...], "dtype": "float32",
                           "chunks": [{"offsets": [...], "sizes": [...], "file": "data-0.bin",
                                       "byte_offset": <int>, "nbytes": <int>,
                                       "crc32": <int>}, ...]}},
     "objects": {"<key>": <value, tagged JSON (see _encode_object)>}}

Each chunk is a C-order (row-major) block of the global tensor starting at ``offsets`` with
extent ``sizes``; its ``nbytes`` bytes sit at ``byte_offset`` of ``file``.  The chunks of a
tensor tile it exactly (no overlap, no gap).  Keys are the state dict's nested keys joined
with "." (``optim.state.fc1.weight.exp_avg``).  Everything here is plain data, so the
format can be read without shardopt (README: "Checkpoint format").
"""
from __future__ import annotations

import base64
import json
import math
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Dict, List

__all__ = ["FORMAT", "VERSION", "METADATA_FILE", "ChunkMetadata", "TensorMetadata", "Metadata",
           "read_metadata", "write_metadata", "dtype_name", "dtype_from_name", "ITEMSIZE"]

FORMAT = "shardopt.distributed.checkpoint"
VERSION = 1
METADATA_FILE = "metadata.json"

# dtype name in the file -> bytes per element; the name is shardopt's (= torch's) dtype name
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
            "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16}


def dtype_name(dtype) -> str:
    """'float32' for shardopt.float32 (the name after the package prefix)."""
    name = str(dtype).rsplit(".", 1)[-1]
    if name not in ITEMSIZE:
        raise TypeError(f"checkpoint: tensors of dtype {dtype} cannot be saved")
    return name


def dtype_from_name(name: str):
    import shardopt  # noqa: PLC0415  (the tensor layer sits below; imported on use)
    dt = getattr(shardopt, name, None) if name in ITEMSIZE else None
    if dt is None:
        raise ValueError(f"checkpoint: unknown dtype {name!r} in the metadata")
    return dt


@dataclass
class ChunkMetadata:
    offsets: List[int]
    sizes: List[int]
    file: str
    byte_offset: int
    nbytes: int
    crc32: int


@dataclass
class TensorMetadata:
    shape: List[int]
    dtype: str
    chunks: List[ChunkMetadata] = field(default_factory=list)


@dataclass
class Metadata:
    world_size: int
    files: Dict[str, int]                 # file name -> size in bytes
    tensors: Dict[str, TensorMetadata]
    objects: Dict[str, Any]               # key -> decoded Python value
    version: int = VERSION


# ------------------------------------------------------------------ objects as tagged JSON

def _encode_object(v):
    """JSON for plain values; tuples and dicts are tagged so they come back as they were;
    anything else is pickled (base64) under "__pickle__"."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(v, list):
        return [_encode_object(x) for x in v]
    if isinstance(v, tuple) and type(v) is tuple:
        return {"__tuple__": [_encode_object(x) for x in v]}
    if isinstance(v, dict) and type(v) is dict:
        return {"__dict__": [[_encode_object(k), _encode_object(x)] for k, x in v.items()]}
    return {"__pickle__": base64.b64encode(pickle.dumps(v, protocol=4)).decode("ascii")}


def _decode_object(v):
    if isinstance(v, list):
        return [_decode_object(x) for x in v]
    if isinstance(v, dict):
        if "__tuple__" in v:
            return tuple(_decode_object(x) for x in v["__tuple__"])
        if "__dict__" in v:
            return {_decode_object(k): _decode_object(x) for k, x in v["__dict__"]}
        if "__float__" in v:
            return float(v["__float__"])
        if "__pickle__" in v:
            return pickle.loads(base64.b64decode(v["__pickle__"]))
        raise ValueError(f"untagged object {v!r}")
    return v


# ------------------------------------------------------------------ reading and writing

def write_metadata(path: str, md: Metadata) -> None:
    """Write ``metadata.json`` into the directory `path` and fsync it."""
    doc = {
        "format": FORMAT, "version": md.version, "byte_order": "little",
        "world_size": md.world_size,
        "files": {name: {"size": size} for name, size in sorted(md.files.items())},
        "tensors": {key: {"shape": list(t.shape), "dtype": t.dtype,
                          "chunks": [vars(c) for c in t.chunks]}
                    for key, t in md.tensors.items()},
        "objects": {key: _encode_object(v) for key, v in md.objects.items()},
    }
    data = json.dumps(doc, indent=1).encode()
    fd = os.open(os.path.join(path, METADATA_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _need(cond: bool, path: str, what: str) -> None:
    if not cond:
        raise ValueError(f"checkpoint {path!r}: corrupted metadata: {what}")


def read_metadata(path: str) -> Metadata:
    """Read and check ``<path>/metadata.json``; ValueError naming the path and what is
    wrong when `path` is not a (complete) checkpoint."""
    if not os.path.isdir(path):
        raise ValueError(f"checkpoint {path!r} does not exist or is not a directory")
    mpath = os.path.join(path, METADATA_FILE)
    if not os.path.isfile(mpath):
        raise ValueError(f"checkpoint {path!r} is not a complete checkpoint: {METADATA_FILE} is "
                         f"missing (an interrupted save leaves no metadata)")
    try:
        with open(mpath, "rb") as f:
            doc = json.loads(f.read())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"checkpoint {path!r}: {METADATA_FILE} is not valid JSON ({e})") from None
    _need(isinstance(doc, dict) and doc.get("format") == FORMAT, path,
          f"'format' is not {FORMAT!r}")
    version = doc.get("version")
    if version != VERSION:
        raise ValueError(f"checkpoint {path!r} has format version {version!r}; this shardopt "
                         f"reads version {VERSION}")
    _need(doc.get("byte_order") == "little", path, "byte_order is not 'little'")
    try:
        files = {name: int(v["size"]) for name, v in doc["files"].items()}
        for name in files:
            _need(os.path.basename(name) == name and not name.startswith("."), path,
                  f"file name {name!r} is not a plain file name")
        tensors = {}
        for key, t in doc["tensors"].items():
            shape = [int(s) for s in t["shape"]]
            dtype = str(t["dtype"])
            _need(dtype in ITEMSIZE, path, f"tensor {key!r} has unknown dtype {dtype!r}")
            _need(all(s >= 0 for s in shape), path, f"tensor {key!r} has shape {shape}")
            chunks, volume = [], 0
            for c in t["chunks"]:
                ch = ChunkMetadata([int(x) for x in c["offsets"]], [int(x) for x in c["sizes"]],
                                   str(c["file"]), int(c["byte_offset"]), int(c["nbytes"]),
                                   int(c["crc32"]))
                n = math.prod(ch.sizes)
                _need(len(ch.offsets) == len(shape) == len(ch.sizes)
                      and all(o >= 0 and s >= 0 and o + s <= g
                              for o, s, g in zip(ch.offsets, ch.sizes, shape)), path,
                      f"a chunk of tensor {key!r} ({ch.offsets}, {ch.sizes}) lies outside "
                      f"its shape {shape}")
                _need(ch.nbytes == n * ITEMSIZE[dtype], path,
                      f"a chunk of tensor {key!r} has {ch.nbytes} bytes for sizes {ch.sizes}")
                _need(ch.file in files and 0 <= ch.byte_offset
                      and ch.byte_offset + ch.nbytes <= files[ch.file], path,
                      f"a chunk of tensor {key!r} points outside data file {ch.file!r}")
                volume += n
                chunks.append(ch)
            _need(volume == math.prod(shape), path,
                  f"the chunks of tensor {key!r} hold {volume} elements, its shape "
                  f"{shape} {math.prod(shape)}")
            tensors[key] = TensorMetadata(shape, dtype, chunks)
        objects = {key: _decode_object(v) for key, v in doc["objects"].items()}
        world = int(doc["world_size"])
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"checkpoint {path!r}: corrupted metadata: missing or malformed "
                         f"field ({type(e).__name__}: {e})") from None
    except (pickle.UnpicklingError, EOFError, base64.binascii.Error) as e:
        raise ValueError(f"checkpoint {path!r}: corrupted metadata: an object does not "
                         f"decode ({e})") from None
    # a truncated or missing data file is refused before anything is read
    for name, size in files.items():
        fpath = os.path.join(path, name)
        try:
            actual = os.stat(fpath).st_size
        except FileNotFoundError:
            raise ValueError(f"checkpoint {path!r} is incomplete: data file {name!r} is "
                             f"missing") from None
        if actual != size:
            raise ValueError(f"checkpoint {path!r}: data file {name!r} has {actual} bytes, the "
                             f"metadata says {size} (truncated or overwritten)")
    return Metadata(world, files, tensors, objects, version)
