"""python -m shardopt.distributed.checkpoint: tools for checkpoint directories.

    consolidate CKPT OUT   full tensors of CKPT into one file: OUT.npz (NumPy) or, for any
                           other name, a shardopt.save file of the nested state dict
    verify CKPT            read every chunk and check its CRC-32

A progress bar goes to stderr when stderr is a terminal (``--progress`` forces it,
``--no-progress`` turns it off).  Exit status 0 on success, 1 with a message on error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zipfile
from typing import Optional

import numpy as np

from ._numpy_io import bfloat16_bits_to_float32, read_full
from .filesystem import resolve_checkpoint
from .metadata import _encode_object, read_metadata


class _Progress:
    """A one-line bar on stderr: bytes done of total, rate, percentage."""

    def __init__(self, total: int, enabled: bool, label: str) -> None:
        self.total, self.done, self.enabled, self.label = max(total, 1), 0, enabled, label
        self.t0 = self.last = time.monotonic()

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.1 or self.done >= self.total):
            self.last = now
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            rate = self.done / max(now - self.t0, 1e-9) / 2 ** 20
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}%  "
                             f"{self.done / 2 ** 30:.2f}/{self.total / 2 ** 30:.2f} GiB  "
                             f"{rate:.0f} MiB/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _nest(flat: dict) -> dict:
    """{"a.b.c": v} -> {"a": {"b": {"c": v}}} (keys of the checkpoint are "."-joined)."""
    out: dict = {}
    for key, v in flat.items():
        parts = key.split(".")
        d = out
        for p in parts[:-1]:
            nxt = d.setdefault(p, {})
            if not isinstance(nxt, dict):  # a key that is also a prefix: keep it flat
                d = None
                break
            d = nxt
        if d is None:
            out[key] = v
        else:
            d[parts[-1]] = v
    return out


def consolidate(ckpt: str, out: str, progress: Optional[bool] = None) -> None:
    """Write the full tensors (and values) of checkpoint `ckpt` to `out` (.npz or shardopt.save)."""
    path = resolve_checkpoint(os.path.abspath(ckpt))
    md = read_metadata(path)
    enabled = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(sum(c.nbytes for t in md.tensors.values() for c in t.chunks), enabled,
                    "consolidate")
    try:
        if out.endswith(".npz"):
            _write_npz(path, md, out, bar)
        else:
            _write_shardopt(path, md, out, bar)
    finally:
        bar.close()


def _write_npz(path, md, out, bar) -> None:
    # one tensor in memory at a time: each array is streamed into the zip archive
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key in md.tensors:
            arr = read_full(path, md, key, bar)
            if md.tensors[key].dtype == "bfloat16":
                arr = bfloat16_bits_to_float32(arr)
            with zf.open(key + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
            del arr
        if md.objects:
            doc = json.dumps({k: _encode_object(v) for k, v in md.objects.items()})
            with zf.open("__objects__.npy", "w") as f:
                np.lib.format.write_array(f, np.array(doc), allow_pickle=False)
    os.replace(tmp, out)


def _write_shardopt(path, md, out, bar) -> None:
    import shardopt  # noqa: PLC0415
    if not hasattr(shardopt, "save"):
        raise RuntimeError("consolidate: this shardopt has no shardopt.save; write a .npz "
                           "instead (OUT ending in .npz)")
    flat = {}
    for key, t in md.tensors.items():
        arr = read_full(path, md, key, bar)
        if t.dtype == "bfloat16":
            flat[key] = shardopt.from_numpy(bfloat16_bits_to_float32(arr)).to(shardopt.bfloat16)
        else:
            flat[key] = shardopt.from_numpy(np.ascontiguousarray(arr))
    flat.update(md.objects)
    shardopt.save(_nest(flat), out)


def verify(ckpt: str, progress: Optional[bool] = None) -> int:
    """Read every chunk of `ckpt` and check its CRC-32; returns the bytes checked."""
    path = resolve_checkpoint(os.path.abspath(ckpt))
    md = read_metadata(path)
    total = sum(c.nbytes for t in md.tensors.values() for c in t.chunks)
    bar = _Progress(total, sys.stderr.isatty() if progress is None else progress, "verify")
    try:
        for key in md.tensors:
            read_full(path, md, key, bar)
    finally:
        bar.close()
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m shardopt.distributed.checkpoint",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("consolidate", help="write the full tensors of CKPT into one file OUT")
    c.add_argument("ckpt")
    c.add_argument("out", help="OUT.npz for NumPy, any other name for a shardopt.save file")
    v = sub.add_parser("verify", help="check every chunk's CRC-32")
    v.add_argument("ckpt")
    for sp in (c, v):
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="show a progress bar on stderr even when it is not a terminal")
        g.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    try:
        if args.cmd == "consolidate":
            consolidate(args.ckpt, args.out, args.progress)
        else:
            n = verify(args.ckpt, args.progress)
            print(f"{args.ckpt}: {n} bytes in every chunk verified")
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
