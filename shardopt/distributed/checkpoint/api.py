"""save / load (torch.distributed.checkpoint.save / load) over the shardopt format.

Both are SPMD collectives over `process_group` (the default group when None; without an
initialized process group they run as a single rank).  Each phase ends in one exchange of
every rank's error (see _collectives.py), so a failure raises on every rank and nobody is
left blocked.

save: (1) every rank describes its leaves and rank 0 creates ``<id>.tmp-<unique>/``;
exchange (keys, shapes and dtypes must agree across ranks); (2) every rank writes and
fsyncs ``data-<rank>.bin`` with its local shards -- replicated Tensors and plain objects
are written once, by rank 0; exchange of the chunk records (the barrier that confirms every
rank's data is durable); (3) rank 0 writes ``metadata.json``, commits the directory
atomically (filesystem.py) and removes stale temp directories; exchange of rank 0's result.

load: every rank reads ``metadata.json``, checks the keys (strict), shapes and dtypes
against its state dict; exchange; then fills each of its local shards (or replicated
Tensors) from the byte ranges of the saved chunks that overlap it -- resharding on load --
and replaces non-tensor values; exchange.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

from ... import _C
from ._collectives import Group
from ._traverse import flatten, is_sharded, set_leaf
from .filesystem import (commit_directory, fault_point, fsync_dir, open_for_read, read_overlap,
                         remove_stale, resolve_checkpoint, tensor_buffer, write_data_file)
from .metadata import (ITEMSIZE, ChunkMetadata, Metadata, TensorMetadata, dtype_name,
                       read_metadata, write_metadata)

__all__ = ["save", "load"]


def _checkpoint_path(checkpoint_id, storage, planner, fn: str) -> str:
    if storage is not None:
        raise NotImplementedError(f"{fn}: custom storage_writer/storage_reader objects are not "
                                  f"supported by shardopt; pass checkpoint_id (a directory)")
    if planner is not None:
        raise NotImplementedError(f"{fn}: custom planners are not supported by shardopt")
    if checkpoint_id is None:
        raise ValueError(f"{fn}: checkpoint_id (the checkpoint directory) is required")
    if not isinstance(checkpoint_id, (str, os.PathLike)):
        raise TypeError(f"{fn}: checkpoint_id must be a str or os.PathLike, but got "
                        f"{type(checkpoint_id).__name__}")
    return os.path.abspath(os.fspath(checkpoint_id))


def _describe(leaf):
    if is_sharded(leaf):
        return ("ShardedTensor", tuple(leaf.size()), dtype_name(leaf.dtype))
    if isinstance(leaf, _C.TensorBase):
        return ("Tensor", tuple(leaf.shape), dtype_name(leaf.dtype))
    return ("object",)


def save(state_dict: Dict[str, Any], *, checkpoint_id=None, storage_writer=None, planner=None,
         process_group=None, no_dist: bool = False) -> Metadata:
    """Save a (sharded) state dict as one checkpoint directory, from every rank.

    Args:
        state_dict: nested dicts (and lists) of ShardedTensors, Tensors and plain values.
            ShardedTensors are saved as their shards; a Tensor is taken to be replicated and
            saved once, from rank 0, as are plain values.
        checkpoint_id: the checkpoint directory.  It appears complete or not at all: a crash
            at any point leaves the previous checkpoint there (or the new one, complete).
        process_group: the ranks that save together (default: the default group).
        no_dist: save as a single process, without collectives.

    Returns the checkpoint's :class:`Metadata`.
    """
    path = _checkpoint_path(checkpoint_id, storage_writer, planner, "save")
    g = Group(None) if no_dist else Group(process_group)
    if no_dist:
        g.dist, g.rank, g.size = False, 0, 1
    tmp = None
    # -- phase 1: describe, and rank 0 makes the temp directory
    err, desc, mine, objects = None, None, [], {}
    try:
        leaves = flatten(state_dict)
        desc = {}
        for key, _, leaf in leaves:
            desc[key] = _describe(leaf)
            if is_sharded(leaf):
                for shard in leaf.local_shards():
                    md = shard.metadata
                    mine.append((key, list(md.shard_offsets), list(md.shard_sizes), shard.tensor))
            elif isinstance(leaf, _C.TensorBase):
                if g.rank == 0:
                    mine.append((key, [0] * leaf.dim(), list(leaf.shape), leaf.detach()))
            elif g.rank == 0:
                objects[key] = leaf
        if g.rank == 0:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:16]}"
            os.mkdir(tmp)
    except BaseException as e:  # noqa: BLE001  (every rank must reach the exchange)
        err = e
    try:
        got = g.exchange(err, (desc, tmp), "checkpoint save")
        tmp = got[0][1]
        ref = got[0][0]
        for r, (d, _) in enumerate(got):
            if d != ref:
                keys = sorted(set(d) ^ set(ref))
                diff = keys or sorted(k for k in d if d[k] != ref[k])
                raise ValueError(f"checkpoint save: rank {r}'s state dict differs from rank 0's "
                                 f"at key(s) {diff[:5]}: every rank must pass the same keys, "
                                 f"global shapes and dtypes")
        fault_point("after_mkdir", g.rank)
        # -- phase 2: every rank writes and fsyncs its data file
        err, payload = None, None
        try:
            if mine:
                fname = f"data-{g.rank}.bin"
                size, recs = write_data_file(os.path.join(tmp, fname), [m[3] for m in mine],
                                             g.rank)
                payload = (fname, size, [(m[0], m[1], m[2], *rec) for m, rec in zip(mine, recs)])
            fault_point("after_fsync", g.rank)
        except BaseException as e:  # noqa: BLE001
            err = e
        written = g.exchange(err, payload, "checkpoint save")
        fault_point("after_barrier", g.rank)
        # -- phase 3: rank 0 writes the metadata and commits
        err, result = None, None
        try:
            if g.rank == 0:
                tensors: Dict[str, TensorMetadata] = {}
                for key, d in ref.items():
                    if d[0] != "object":
                        tensors[key] = TensorMetadata(list(d[1]), d[2], [])
                files = {}
                for p in written:
                    if p is None:
                        continue
                    fname, size, recs = p
                    files[fname] = size
                    for key, offs, sizes, boff, n, crc in recs:
                        tensors[key].chunks.append(ChunkMetadata(offs, sizes, fname, boff, n, crc))
                for key, t in tensors.items():
                    held = sum(math.prod(c.sizes) for c in t.chunks)
                    if held != math.prod(t.shape):
                        raise ValueError(f"checkpoint save: the shards of {key!r} hold {held} "
                                         f"of its {math.prod(t.shape)} elements")
                result = Metadata(g.size, files, tensors, objects)
                write_metadata(tmp, result)
                fsync_dir(tmp)
                fault_point("after_metadata", g.rank)
                commit_directory(tmp, path, os.path.basename(tmp).rsplit("-", 1)[-1], g.rank)
                tmp = None
                remove_stale(path, path)
        except BaseException as e:  # noqa: BLE001
            err = e
        return g.broadcast(result, err, 0, "checkpoint save")
    finally:
        if tmp is not None and g.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)


def _regions(leaf):
    """[(offsets, sizes, tensor)] this rank fills for a tensor leaf."""
    if is_sharded(leaf):
        return [(list(s.metadata.shard_offsets), list(s.metadata.shard_sizes), s.tensor)
                for s in leaf.local_shards()]
    return [([0] * leaf.dim(), list(leaf.shape), leaf)]


def _check_against(key: str, leaf, md: Metadata, path: str) -> None:
    t = md.tensors.get(key)
    if t is None:
        raise ValueError(f"checkpoint {path!r}: key {key!r} is a tensor in the state dict but "
                         f"a non-tensor value in the checkpoint")
    shape = tuple(leaf.size()) if is_sharded(leaf) else tuple(leaf.shape)
    if list(shape) != t.shape:
        raise ValueError(f"checkpoint {path!r}: size mismatch for {key!r}: the checkpoint has "
                         f"shape {tuple(t.shape)}, the state dict {shape}")
    name = dtype_name(leaf.dtype)
    if name != t.dtype:
        raise ValueError(f"checkpoint {path!r}: dtype mismatch for {key!r}: the checkpoint has "
                         f"{t.dtype}, the state dict {name}")


def load(state_dict: Dict[str, Any], *, checkpoint_id=None, storage_reader=None, planner=None,
         process_group=None, no_dist: bool = False, strict: bool = True) -> None:
    """Load a checkpoint in place into the Tensors and ShardedTensors of `state_dict`
    (plain values are replaced), whatever sharding and number of ranks saved it.

    Args:
        state_dict: the state dict to fill; its layout (sharding, ranks) decides what each
            rank reads: only the bytes overlapping its own shards.
        checkpoint_id: the checkpoint directory written by :func:`save`.
        process_group: the ranks that load together (default: the default group).
        no_dist: load as a single process, without collectives.
        strict: (shardopt extension, default True) a key of the checkpoint that is not in
            `state_dict` is an error; False loads a subset.  A key of `state_dict` missing
            from the checkpoint is always an error.

    Raises ValueError naming the key or the path, on every rank, for a missing or
    unexpected key, a shape or dtype mismatch, or a path that is not a complete checkpoint.
    """
    path = _checkpoint_path(checkpoint_id, storage_reader, planner, "load")
    g = Group(None) if no_dist else Group(process_group)
    if no_dist:
        g.dist, g.rank, g.size = False, 0, 1
    err, md, leaves = None, None, []
    try:
        path = resolve_checkpoint(path)
        md = read_metadata(path)
        leaves = flatten(state_dict)
        have = {k for k, _, _ in leaves}
        stored = set(md.tensors) | set(md.objects)
        missing = sorted(have - stored)
        if missing:
            raise ValueError(f"checkpoint {path!r}: missing key(s) in the checkpoint: "
                             f"{missing[:10]}{' ...' if len(missing) > 10 else ''}")
        unexpected = sorted(stored - have)
        if strict and unexpected:
            raise ValueError(f"checkpoint {path!r}: unexpected key(s) in the checkpoint, not in "
                             f"the state dict: {unexpected[:10]}"
                             f"{' ...' if len(unexpected) > 10 else ''} (strict=False loads a "
                             f"subset)")
        for key, _, leaf in leaves:
            if is_sharded(leaf) or isinstance(leaf, _C.TensorBase):
                _check_against(key, leaf, md, path)
            elif key in md.tensors:
                raise ValueError(f"checkpoint {path!r}: key {key!r} is a tensor in the "
                                 f"checkpoint but a {type(leaf).__name__} in the state dict")
    except BaseException as e:  # noqa: BLE001
        err = e
    g.exchange(err, None, "checkpoint load")
    err = None
    try:
        _read_tensors(path, md, leaves)
        for key, p, leaf in leaves:
            if key in md.objects:
                set_leaf(state_dict, p, md.objects[key])
    except BaseException as e:  # noqa: BLE001
        err = e
    g.exchange(err, None, "checkpoint load")


def _read_tensors(path: str, md: Metadata, leaves) -> None:
    import shardopt  # noqa: PLC0415

    fds: Dict[str, tuple] = {}
    checks: List = []
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ckpt-crc32")
    try:
        for key, _, leaf in leaves:
            if not (is_sharded(leaf) or isinstance(leaf, _C.TensorBase)):
                continue
            t = md.tensors[key]
            itemsize = ITEMSIZE[t.dtype]
            for offs, sizes, dst in _regions(leaf):
                direct = dst.device.type == "cpu" and dst.is_contiguous()
                buf = dst if direct else shardopt.empty(tuple(sizes), dtype=dst.dtype)
                mv, _keep = tensor_buffer(buf)
                for ch in t.chunks:
                    fd = fds.get(ch.file)
                    if fd is None:
                        fd = fds[ch.file] = open_for_read(os.path.join(path, ch.file))
                    view = read_overlap(fd[0], ch.file, ch, offs, sizes, mv, itemsize, fd[1])
                    if view is not None:  # the whole chunk landed contiguously: verify it
                        checks.append((key, ch, pool.submit(zlib.crc32, view), _keep))
                if sys.byteorder == "big" and itemsize > 1:  # the format is little-endian
                    import numpy as np  # noqa: PLC0415
                    np.frombuffer(mv, dtype=f"u{itemsize}").byteswap(inplace=True)
                if not direct:
                    with shardopt.no_grad():
                        dst.copy_(buf)
        for key, ch, fut, _ in checks:
            if fut.result() != ch.crc32:
                raise ValueError(f"checkpoint {path!r}: a chunk of {key!r} (offsets "
                                 f"{ch.offsets}) in data file {ch.file!r} fails its CRC-32 "
                                 f"check (corrupted)")
    finally:
        pool.shutdown(wait=True)
        for fd, dfd in fds.values():
            os.close(fd)
            if dfd >= 0:
                os.close(dfd)
