"""Helpers shared by the op tests: dtype tables, random tensors with their exact float64
values, and a dtype-aware NumPy view of any tensor."""
import numpy as np
import pytest

import shardopt as so

NP_OF = {so.float32: np.float32, so.float64: np.float64, so.float16: np.float16,
         so.int32: np.int32, so.int64: np.int64, so.bool: np.bool_}
ALL_DTYPES = [so.float32, so.float64, so.float16, so.bfloat16, so.int32, so.int64, so.bool]
FLOAT_DTYPES = [so.float32, so.float64, so.float16, so.bfloat16]
needs_cuda = [pytest.mark.cuda,
              pytest.mark.skipif(not so.cuda.is_available(), reason="no CUDA device")]


def to_np(t):
    """NumPy copy of a tensor of any dtype/device (bfloat16 widened to float32)."""
    t = t.cpu()
    if t.dtype == so.bfloat16:
        t = t.float()
    return np.array(t.numpy(), copy=True)


def make(shape, dtype, rng, lo=-1.0, hi=1.0, ilo=-9, ihi=10):
    """Random tensor of `dtype` plus its exact float64 values: floats uniform in [lo, hi),
    ints in [ilo, ihi), bools fair coin flips."""
    if dtype == so.bool:
        arr = rng.random(shape) < 0.5
    elif dtype in (so.int32, so.int64):
        arr = rng.integers(ilo, ihi, size=shape).astype(NP_OF[dtype])
    else:
        arr = rng.uniform(lo, hi, size=shape).astype(np.float32 if dtype == so.bfloat16 else NP_OF[dtype])
    t = so._C.from_numpy(np.ascontiguousarray(arr))
    if dtype == so.bfloat16:
        t = t.to(so.bfloat16)
    return t, to_np(t).astype(np.float64)


def poison_heap(nbytes):
    """Allocate and free a NaN-filled buffer of `nbytes`, so that a fresh output of that size
    (malloc reuses the freed block) which a kernel forgot to fill shows NaN, not zeros."""
    n = max(1, nbytes // 8)
    p = so.full((n,), float("nan"), dtype=so.float64)
    del p
