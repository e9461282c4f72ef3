"""Value comparison for tests: torch's TestCase.assertEqual rules for shardopt Tensors,
NumPy arrays, numbers and (nested) containers.

Tolerances by dtype follow torch.testing (rtol, atol): float32 1.3e-6/1e-5, float64
1e-7/1e-7, float16 1e-3/1e-5, bfloat16 1.6e-2/1e-5; integers and bool compare exactly.
Shape and dtype must match unless ``exact_dtype=False`` (then the looser tolerance of the
two dtypes is used).  NaNs compare equal by default (``equal_nan=True``), as in torch.
"""
from __future__ import annotations

import math
import numbers
import unittest

import numpy as np

__all__ = ["assert_equal", "TestCase"]

_TOL = {
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7),
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
}


def _dtype_name(dtype):
    """'float32', 'bfloat16', ... for a shardopt dtype, a NumPy dtype or a type."""
    if isinstance(dtype, np.dtype):
        return "bool" if dtype == np.bool_ else dtype.name
    name = str(dtype)
    return name.rsplit(".", 1)[-1]


def _is_tensor(x):
    try:
        from shardopt._C import TensorBase  # noqa: PLC0415
    except ImportError:
        TensorBase = ()
    if TensorBase and isinstance(x, TensorBase):
        return True
    # Duck typing for tensor-likes that are not ours (e.g. a ShardedTensor's local tensor
    # wrapper) but still expose dtype/shape/numpy().
    return type(x).__module__.startswith("shardopt") and hasattr(x, "numpy") and hasattr(
        x, "dtype")


def _tensor_to_numpy(t):
    name = _dtype_name(t.dtype)
    if hasattr(t, "detach"):
        t = t.detach()
    if hasattr(t, "cpu"):
        t = t.cpu()
    if name == "bfloat16":  # NumPy has no bfloat16: compare in float32 (exact widening)
        import shardopt  # noqa: PLC0415
        t = t.to(shardopt.float32)
    return np.asarray(t.numpy()), name


def _as_array(x):
    """(ndarray, dtype name or None when the dtype came from a Python value)."""
    if _is_tensor(x):
        return _tensor_to_numpy(x)
    if isinstance(x, np.ndarray):
        return x, _dtype_name(x.dtype)
    if isinstance(x, np.generic):
        return np.asarray(x), _dtype_name(x.dtype)
    return np.asarray(x), None


def _tolerance(names, rtol, atol):
    if rtol is not None and atol is not None:
        return rtol, atol
    r, a = 0.0, 0.0
    for n in names:
        if n in _TOL:
            r, a = max(r, _TOL[n][0]), max(a, _TOL[n][1])
        elif n is None or n.startswith("float") or n.startswith("complex"):
            r, a = max(r, _TOL["float64"][0]), max(a, _TOL["float64"][1])
    return (r if rtol is None else rtol), (a if atol is None else atol)


def _fail(msg, extra):
    raise AssertionError(f"{msg}\n{extra}" if extra else msg)


def _compare_arrays(x, y, *, rtol, atol, exact_dtype, equal_nan, msg, path):
    ax, nx = _as_array(x)
    ay, ny = _as_array(y)
    where = f" at {path}" if path else ""
    if ax.shape != ay.shape:
        _fail(f"The values for attribute 'shape' do not match{where}: "
              f"{tuple(ax.shape)} != {tuple(ay.shape)}.", msg)
    both_typed = nx is not None and ny is not None
    if exact_dtype and both_typed and nx != ny:
        _fail(f"The values for attribute 'dtype' do not match{where}: {nx} != {ny}.", msg)
    rtol, atol = _tolerance([nx, ny], rtol, atol)
    kinds = {ax.dtype.kind, ay.dtype.kind}
    if kinds <= {"b", "i", "u"} and rtol == 0 and atol == 0 or kinds <= {"b"}:
        ok = np.array_equal(ax, ay)
        if ok:
            return
        mism = ax != ay
    else:
        fx, fy = ax.astype(np.float64), ay.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            finite = np.isfinite(fx) & np.isfinite(fy)
            # Infinities must match exactly (inf - -inf would pass a relative test).
            close = np.where(finite, np.abs(fx - fy) <= atol + rtol * np.abs(fy), fx == fy)
            if equal_nan:
                close |= np.isnan(fx) & np.isnan(fy)
        if close.all():
            return
        mism = ~close
    n_bad, n = int(np.count_nonzero(mism)), mism.size
    idx = tuple(int(i) for i in np.argwhere(mism)[0]) if mism.ndim else ()
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(ax.astype(np.float64) - ay.astype(np.float64))
        worst = float(np.nanmax(diff)) if diff.size and not np.isnan(diff).all() else float("nan")
    _fail(f"Tensor-likes are not {'equal' if rtol == atol == 0 else 'close'}{where}!\n\n"
          f"Mismatched elements: {n_bad} / {n} ({100.0 * n_bad / max(n, 1):.1f}%)\n"
          f"Greatest absolute difference: {worst}\n"
          f"First mismatch at index {idx}: {ax[idx] if mism.ndim else ax} vs "
          f"{ay[idx] if mism.ndim else ay} (up to {atol} allowed, rtol {rtol})", msg)


def assert_equal(x, y, *, rtol=None, atol=None, exact_dtype=True, equal_nan=True, msg=None,
                 path=""):
    """Raise AssertionError unless x and y are equal by torch's assertEqual rules."""
    if (rtol is None) != (atol is None):
        raise ValueError("rtol and atol must both be given or both be None")
    arrayish = (np.ndarray, np.generic)
    if _is_tensor(x) or _is_tensor(y) or isinstance(x, arrayish) or isinstance(y, arrayish):
        # A Python number or list on one side takes the other side's dtype (as torch does).
        _compare_arrays(x, y, rtol=rtol, atol=atol, exact_dtype=exact_dtype,
                        equal_nan=equal_nan, msg=msg, path=path)
        return
    if isinstance(x, bool) or isinstance(y, bool) or isinstance(x, (str, bytes)):
        if x != y:
            _fail(f"{x!r} != {y!r}" + (f" at {path}" if path else ""), msg)
        return
    if isinstance(x, numbers.Number) and isinstance(y, numbers.Number):
        if isinstance(x, numbers.Integral) and isinstance(y, numbers.Integral):
            ok = x == y
        else:
            r, a = (rtol, atol) if rtol is not None else _TOL["float64"]
            ok = (x == y or (equal_nan and isinstance(x, float) and isinstance(y, float)
                             and math.isnan(x) and math.isnan(y))
                  or abs(x - y) <= a + r * abs(y))
        if not ok:
            _fail(f"Scalars are not close{' at ' + path if path else ''}: {x!r} != {y!r}", msg)
        return
    if isinstance(x, dict) and isinstance(y, dict):
        if set(x) != set(y):
            _fail(f"dict keys differ{' at ' + path if path else ''}: "
                  f"{sorted(map(repr, x))} != {sorted(map(repr, y))}", msg)
        for k in x:
            assert_equal(x[k], y[k], rtol=rtol, atol=atol, exact_dtype=exact_dtype,
                         equal_nan=equal_nan, msg=msg, path=f"{path}[{k!r}]")
        return
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        if len(x) != len(y):
            _fail(f"Sequences differ in length{' at ' + path if path else ''}: "
                  f"{len(x)} != {len(y)}", msg)
        for i, (a, b) in enumerate(zip(x, y)):
            assert_equal(a, b, rtol=rtol, atol=atol, exact_dtype=exact_dtype,
                         equal_nan=equal_nan, msg=msg, path=f"{path}[{i}]")
        return
    if x != y:
        _fail(f"{x!r} != {y!r}" + (f" at {path}" if path else ""), msg)


class TestCase(unittest.TestCase):
    """unittest.TestCase whose assertEqual/assertNotEqual understand Tensors like torch's."""

    def assertEqual(self, x, y, msg=None, *, atol=None, rtol=None, exact_dtype=True,
                    equal_nan=True, **kwargs):
        if kwargs.pop("prec", None) is not None:  # torch's old alias for atol
            raise TypeError("prec= is not supported; pass atol= and rtol=")
        if kwargs:
            raise TypeError(f"assertEqual() got unexpected keyword arguments {sorted(kwargs)}")
        assert_equal(x, y, rtol=rtol, atol=atol, exact_dtype=exact_dtype, equal_nan=equal_nan,
                     msg=msg)

    def assertNotEqual(self, x, y, msg=None, *, atol=None, rtol=None, **kwargs):
        try:
            self.assertEqual(x, y, atol=atol, rtol=rtol, **kwargs)
        except AssertionError:
            return
        raise AssertionError(msg or f"{x!r} == {y!r} (expected them to differ)")
