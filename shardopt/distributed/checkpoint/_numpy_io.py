"""Reading whole tensors of a checkpoint into NumPy arrays (the consolidation tool's core).

One tensor at a time: the full array is allocated, then each chunk is read whole (bounded by
the chunk's size), its CRC-32 verified, and placed.  NumPy dtypes of the format's names are
in NUMPY_DTYPE; bfloat16 has none, so it is read as its uint16 bit pattern.
"""
from __future__ import annotations

import os
import zlib
from typing import Callable, Optional

import numpy as np

from .metadata import Metadata, TensorMetadata

__all__ = ["NUMPY_DTYPE", "read_full", "bfloat16_bits_to_float32"]

NUMPY_DTYPE = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "bfloat16": "<u2",
               "int64": "<i8", "int32": "<i4", "int16": "<i2", "int8": "i1", "uint8": "u1",
               "bool": "?", "complex64": "<c8", "complex128": "<c16"}


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact: bfloat16 is float32's top half)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def read_full(path: str, md: Metadata, key: str,
              progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """The full tensor `key` as a NumPy array (bfloat16 as uint16 bits); every chunk's
    CRC-32 is checked (ValueError naming the key and file on a mismatch)."""
    t: TensorMetadata = md.tensors[key]
    out = np.empty(t.shape, dtype=NUMPY_DTYPE[t.dtype])
    for ch in t.chunks:
        buf = bytearray(ch.nbytes)
        with open(os.path.join(path, ch.file), "rb") as f:
            f.seek(ch.byte_offset)
            if f.readinto(buf) != ch.nbytes:
                raise ValueError(f"checkpoint {path!r}: data file {ch.file!r} is truncated "
                                 f"inside a chunk of {key!r}")
        if zlib.crc32(buf) != ch.crc32:
            raise ValueError(f"checkpoint {path!r}: a chunk of {key!r} (offsets {ch.offsets}) "
                             f"in data file {ch.file!r} fails its CRC-32 check (corrupted)")
        piece = np.frombuffer(buf, dtype=out.dtype).reshape(ch.sizes)
        out[tuple(slice(o, o + n) for o, n in zip(ch.offsets, ch.sizes))] = piece
        if progress is not None:
            progress(ch.nbytes)
    return out
