"""Elementwise ops against NumPy float64 on fresh random inputs (seed printed on failure).

Tolerances (relative, on values of the result dtype): float64 1e-12, float32 2e-6 (4e-6 for
transcendental ops), float16 2e-3 (one half ulp 2^-11, plus the input rounding), bfloat16
1.6e-2 (2^-8 ulp, ditto); integer and bool results must match exactly.
"""
import math
import operator

import numpy as np
import pytest

import shardopt as so
from shardopt import _C

SEED = int(np.random.SeedSequence().entropy % (2**32))
FLOATS = [so.float32, so.float64, so.float16, so.bfloat16]
INTS = [so.int32, so.int64]
ALL = FLOATS + INTS + [so.bool]
NP = {so.float32: np.float32, so.float64: np.float64, so.float16: np.float16,
      so.int32: np.int32, so.int64: np.int64, so.bool: np.bool_}
RTOL = {so.float64: 1e-12, so.float32: 2e-6, so.float16: 2e-3, so.bfloat16: 1.6e-2}


def rng(salt=0):
    return np.random.default_rng([SEED, salt])


def T(arr, dtype, device="cpu"):
    """A tensor of `dtype` holding arr's values (a fresh copy)."""
    arr = np.asarray(arr)
    if dtype == so.bfloat16:
        t = _C.from_numpy(np.array(arr, dtype=np.float32)).to(so.bfloat16)
    else:
        t = _C.from_numpy(np.array(arr, dtype=NP[dtype]))
    return t if device == "cpu" else t.to(device)


def N(t):
    """Values of a tensor as float64 (or int64/bool) NumPy, exactly as stored."""
    t = t.cpu()
    if t.dtype == so.bfloat16:
        t = t.float()
    a = t.numpy()
    return a.astype(np.float64) if a.dtype.kind == "f" else a.copy()


def data(shape, dtype, r, lo=-3.0, hi=3.0, nonzero=False):
    if dtype == so.bool:
        return r.random(shape) < 0.5
    if dtype in INTS:
        v = r.integers(int(lo) * 3, int(hi) * 3 + 1, size=shape)
        if nonzero:
            v[v == 0] = 1
        return v
    v = r.uniform(lo, hi, size=shape)
    if nonzero:
        v[np.abs(v) < 0.1] = 0.5
    return v


def check(got, ref, dtype=None, rtol=None, atol=0.0, what=""):
    dtype = dtype or got.dtype
    g = N(got)
    assert g.shape == np.shape(ref), f"{what}: shape {g.shape} vs {np.shape(ref)} (seed {SEED})"
    if dtype in RTOL:
        rt = RTOL[dtype] if rtol is None else rtol
        scale = 1.0 if dtype != so.float64 else 1e-300
        np.testing.assert_allclose(g, ref, rtol=rt, atol=max(atol, rt * 1e-3 * scale),
                                   equal_nan=True, err_msg=f"{what} (seed {SEED})")
    else:
        np.testing.assert_array_equal(g, ref, err_msg=f"{what} (seed {SEED})")


def rounded(x, dtype):
    """x rounded to dtype, as float64: what the kernel reads."""
    return N(T(x, dtype))


# ------------------------------------------------------------------ promotion


PROMO = [
    (so.int32, so.float32, so.float32), (so.int64, so.float32, so.float32),
    (so.int32, so.int64, so.int64), (so.bool, so.int32, so.int32), (so.bool, so.float16, so.float16),
    (so.float16, so.bfloat16, so.float32), (so.float16, so.float32, so.float32),
    (so.bfloat16, so.float64, so.float64), (so.float32, so.float64, so.float64),
    (so.bool, so.bool, so.bool), (so.int64, so.float16, so.float16),
]


@pytest.mark.parametrize("a,b,expected", PROMO)
def test_promotion_table(a, b, expected):
    x, y = T(np.ones(3), a), T(np.ones(3), b)
    assert (x + y).dtype == expected
    assert (y + x).dtype == expected
    assert so.mul(x, y).dtype == expected
    assert (x == y).dtype == so.bool


@pytest.mark.parametrize("dtype,scalar,expected", [
    (so.int32, 1, so.int32), (so.int64, 2.5, so.float32), (so.int32, 2.5, so.float32),
    (so.float16, 2.5, so.float16), (so.bfloat16, 3, so.bfloat16), (so.float64, 1.5, so.float64),
    (so.bool, 1, so.int64), (so.bool, 1.5, so.float32), (so.bool, True, so.bool),
    (so.int32, True, so.int32), (so.float32, True, so.float32),
])
def test_promotion_with_python_scalars(dtype, scalar, expected):
    x = T(np.ones(3), dtype)
    assert (x + scalar).dtype == expected
    assert (scalar + x).dtype == expected
    assert so.maximum(x, scalar).dtype == expected


def test_promotion_zero_dim_and_true_division():
    v = T(np.ones(3), so.float32)
    assert (v + T(np.float64(2.0), so.float64)).dtype == so.float32  # 0-d same category
    assert (T(np.ones(3), so.int32) + T(np.float64(2.0), so.float64)).dtype == so.float64
    assert (T(np.ones(3), so.int64) / 2).dtype == so.float32
    assert (T(np.ones(3), so.int32) / T(np.ones(3), so.int32)).dtype == so.float32
    assert so.div(T(np.ones(3), so.int32), 2, rounding_mode="floor").dtype == so.int32
    assert so.sqrt(T(np.ones(3), so.int64)).dtype == so.float32
    assert so.abs(T(np.ones(3), so.int32)).dtype == so.int32
    assert so.where(T(np.ones(3), so.bool), 1.0, 0).dtype == so.float32
    assert so.where(T(np.ones(3), so.bool), T(np.ones(3), so.float16), 0.5).dtype == so.float16
    assert so.clamp(T(np.ones(3), so.int64), min=0.5).dtype == so.float32


# ------------------------------------------------------------------ binary ops

BINARY = {
    "add": (operator.add, np.add), "sub": (operator.sub, np.subtract),
    "mul": (operator.mul, np.multiply), "div": (operator.truediv, np.true_divide),
    "maximum": (so.maximum, np.maximum), "minimum": (so.minimum, np.minimum),
    "floor_divide": (operator.floordiv, np.floor_divide),
    "remainder": (operator.mod, np.remainder),
}
CMP = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
       "gt": operator.gt, "ge": operator.ge}


def _expected_dtype(a, b, op):
    r = (T(np.ones(1), a) + T(np.ones(1), b)).dtype if not (a == b == so.bool) else so.bool
    if op == "div" and not r.is_floating_point:
        return so.float32
    return r


def _ref_binary(name, x, y, out_dtype):
    fn = BINARY[name][1]
    if out_dtype in INTS or out_dtype == so.bool:
        with np.errstate(all="ignore"):
            return fn(x.astype(np.int64), y.astype(np.int64)).astype(NP[out_dtype])
    with np.errstate(all="ignore"):
        return fn(x.astype(np.float64), y.astype(np.float64))


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("dt", ALL)
def test_binary_same_dtype_broadcast(name, dt):
    if dt == so.bool and name in ("sub", "floor_divide", "remainder"):
        pytest.skip("torch refuses / makes no sense for bool")
    r = rng(hash((name, str(dt))) % 1000)
    nz = name in ("div", "floor_divide", "remainder")
    a = data((3, 1, 4), dt, r)
    b = data((5, 4), dt, r, nonzero=nz)
    if dt == so.bool and nz:
        b = np.ones((5, 4), bool)
    x, y = T(a, dt), T(b, dt)
    out = BINARY[name][0](x, y)
    assert tuple(out.shape) == (3, 5, 4)
    od = _expected_dtype(dt, dt, name)
    assert out.dtype == od
    ref = _ref_binary(name, N(x), N(y), od)
    rt = RTOL.get(od)
    check(out, ref, od, rtol=None if rt is None else rt * (2 if name in ("div",) else 1),
          atol=1e-6 if od == so.float32 and name == "remainder" else 0.0, what=f"{name} {dt}")


@pytest.mark.parametrize("a_dt,b_dt", [(so.int32, so.float32), (so.float16, so.float32),
                                       (so.bfloat16, so.float16), (so.int64, so.int32),
                                       (so.bool, so.float64), (so.float32, so.float64)])
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum"])
def test_binary_mixed_dtypes(name, a_dt, b_dt):
    r = rng(7)
    x = T(data((4, 33), a_dt, r), a_dt)
    y = T(data((33,), b_dt, r, nonzero=True), b_dt)
    if name == "sub" and so.bool in (a_dt, b_dt):
        with pytest.raises(RuntimeError, match="Subtraction"):
            x - y
        return
    out = BINARY[name][0](x, y)
    od = _expected_dtype(a_dt, b_dt, name)
    assert out.dtype == od
    check(out, _ref_binary(name, N(x), N(y), od), od, what=f"{name} {a_dt} {b_dt}")


@pytest.mark.parametrize("dt", [so.float32, so.float64, so.int64, so.float16])
def test_binary_non_contiguous(dt):
    r = rng(11)
    base_a = T(data((6, 10), dt, r), dt)
    base_b = T(data((10, 6), dt, r), dt)
    xa = base_a[:, ::2]          # (6, 5) stride 2
    xb = base_b.t()[:, 1::2]     # (6, 5) transposed, then stride 2
    assert not xa.is_contiguous() and not xb.is_contiguous()
    for name in ("add", "mul", "maximum"):
        out = BINARY[name][0](xa, xb)
        check(out, _ref_binary(name, N(xa), N(xb), dt), dt, what=f"strided {name}")
    # broadcast row of a transposed view, and a stride-0 expanded operand
    row = base_b.t()[0]
    check(xa + row[::2], N(xa) + N(row[::2]), dt)
    ex = T(data((1, 5), dt, r), dt).expand(6, 5)
    check(so.mul(xa, ex), (N(xa) * N(ex)).astype(N(xa).dtype), dt)


def test_binary_long_rows_use_every_path():
    # rows longer than a conversion chunk (1024) and than a SIMD block, odd tails
    r = rng(12)
    for n in (1, 15, 16, 17, 1023, 1024, 1025, 5000):
        a = r.standard_normal(n)
        b = r.standard_normal(n)
        x32, y16 = T(a, so.float32), T(b, so.float16)
        check(x32 + y16, N(x32) + N(y16), so.float32, what=f"n={n}")
        check(x32 * 3.5, N(x32) * 3.5, so.float32)
        check(2.0 - x32, 2.0 - N(x32), so.float32)
        h = T(a, so.float16)
        check(h * h, rounded(N(h) * N(h), so.float16), so.float16, rtol=1e-7 + 1e-3)


@pytest.mark.parametrize("dt", ALL)
def test_empty_tensors(dt):
    x = T(np.zeros((0, 3)), dt)
    y = T(np.zeros((3,)), dt)
    for res in (x + y if dt != so.bool else x * y, x == y, so.maximum(x, y), so.where(x == y, x, y)):
        assert tuple(res.shape) == (0, 3)
    z = T(np.zeros((2, 0)), dt)
    if dt != so.bool:
        assert tuple(so.abs(z).shape) == (2, 0)
    v = z._version
    z.mul_(2 if dt != so.bool else True)
    assert z._version == v + 1


@pytest.mark.parametrize("name", list(CMP))
@pytest.mark.parametrize("dt", [so.float32, so.float64, so.float16, so.bfloat16, so.int32,
                                so.int64, so.bool])
def test_comparisons(name, dt):
    r = rng(13)
    a = data((4, 7), dt, r)
    b = a.copy()
    b[::2] = data((2, 7), dt, r)  # half equal, half random
    x, y = T(a, dt), T(b, dt)
    got = CMP[name](x, y)
    assert got.dtype == so.bool
    check(got, CMP[name](N(x), N(y)))
    check(getattr(so, name)(x, y), CMP[name](N(x), N(y)))
    check(getattr(x, name)(y), CMP[name](N(x), N(y)))
    if dt != so.bool:
        check(CMP[name](x, 1), CMP[name](N(x), 1))
        check(CMP[name](1.5, x), CMP[name](1.5, N(x)))


def test_scalars_on_both_sides():
    r = rng(14)
    x = T(r.uniform(0.5, 2, (3, 4)), so.float32)
    a = N(x)
    check(x + 2, a + 2, so.float32)
    check(2 + x, 2 + a, so.float32)
    check(x - 1.5, a - 1.5, so.float32)
    check(1.5 - x, 1.5 - a, so.float32)
    check(x * -3, a * -3, so.float32)
    check(3 / x, 3 / a, so.float32)
    check(x / 3, a / 3, so.float32)
    check(x ** 2, a ** 2, so.float32)
    check(2 ** x, 2 ** a, so.float32, rtol=4e-6)
    check(x ** 0.5, np.sqrt(a), so.float32)
    check(7 // x, np.floor_divide(7, a), so.float32)
    check(x % 0.7, np.remainder(a, 0.7), so.float32, atol=1e-6)
    i = T(r.integers(-20, 20, (5,)), so.int64)
    check(i ** 2, N(i) ** 2)
    check(3 ** T([0, 1, 2, 5], so.int32), np.array([1, 3, 9, 243]))
    check(-i, -N(i))
    check(abs(i), np.abs(N(i)))


def test_add_sub_alpha_and_div_rounding():
    r = rng(15)
    a, b = r.standard_normal((4, 5)), r.standard_normal(5)
    x, y = T(a, so.float64), T(b, so.float64)
    check(so.add(x, y, alpha=2.5), a + 2.5 * b)
    check(x.sub(y, alpha=-2), a + 2 * b)
    check(so.sub(x, 1, alpha=3), a - 3)
    check(so.div(x, y, rounding_mode="trunc"), np.trunc(a / b))
    check(x.div(y, rounding_mode="floor"), np.floor_divide(a, b))
    check(so.div(x, y, rounding_mode=None), a / b)
    ia = r.integers(-50, 50, 40)
    ib = r.integers(1, 7, 40) * np.where(r.random(40) < 0.5, -1, 1)
    xi, yi = T(ia, so.int32), T(ib, so.int32)
    check(so.div(xi, yi, rounding_mode="trunc"), (np.trunc(ia / ib)).astype(np.int32))
    check(so.div(xi, yi, rounding_mode="floor"), np.floor_divide(ia, ib).astype(np.int32))
    check(so.remainder(xi, yi), np.remainder(ia, ib).astype(np.int32))
    check(so.add(xi, yi, alpha=3), (ia + 3 * ib).astype(np.int32))
    with pytest.raises(RuntimeError, match="alpha must not be a floating point"):
        so.add(xi, yi, alpha=1.5)
    with pytest.raises(RuntimeError, match="rounding_mode"):
        so.div(x, y, rounding_mode="round")
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        so.div(xi, T(np.zeros(40), so.int32), rounding_mode="floor")


def test_int_overflow_wraps_and_pow_rules():
    big = T([2**62, -(2**63)], so.int64)
    check(big + big, np.array([-(2**63), 0]))
    check(so.div(big, -1, rounding_mode="trunc"), np.array([-(2**62), -(2**63)]))
    i32 = T([2**31 - 1], so.int32)
    check(i32 + 1, np.array([-(2**31)], np.int32))
    e = T([-1, -2, 0, 3], so.int64)
    check(so.pow(T([2, 1, 5, -1], so.int64), e), np.array([0, 1, 1, -1]))
    with pytest.raises(RuntimeError, match="negative integer powers"):
        T([1, 2], so.int64) ** -1
    check(T([4.0], so.float32) ** -1, np.array([0.25]))


# ------------------------------------------------------------------ unary ops

def _erf(x):
    return np.vectorize(math.erf)(x)


UNARY = {
    "neg": (lambda t: -t, lambda a: -a, (-3, 3)),
    "abs": (abs, np.abs, (-3, 3)),
    "sqrt": (so.sqrt, np.sqrt, (0, 9)),
    "exp": (so.exp, np.exp, (-5, 5)),
    "log": (so.log, np.log, (0.01, 50)),
    "sign": (so.sign, np.sign, (-3, 3)),
    "relu": (so.relu, lambda a: np.maximum(a, 0), (-3, 3)),
    "sigmoid": (so.sigmoid, lambda a: 1 / (1 + np.exp(-a)), (-6, 6)),
    "tanh": (so.tanh, np.tanh, (-3, 3)),
    "gelu": (so.gelu, lambda a: 0.5 * a * (1 + _erf(a / math.sqrt(2))), (-5, 5)),
    "gelu_tanh": (lambda t: so.gelu(t, approximate="tanh"),
                  lambda a: 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3))),
                  (-5, 5)),
    "square": (so.square, np.square, (-3, 3)),
    "reciprocal": (so.reciprocal, np.reciprocal, (0.5, 4)),
}


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("dt", FLOATS)
def test_unary_float(name, dt):
    f, ref, (lo, hi) = UNARY[name]
    r = rng(16)
    x = T(r.uniform(lo, hi, (3, 50)), dt)[:, ::2]  # strided
    got = f(x)
    assert got.dtype == dt
    rt = RTOL[dt] * (2 if dt == so.float32 else 1)
    with np.errstate(all="ignore"):
        check(got, ref(N(x)), dt, rtol=rt, atol={so.float32: 1e-6, so.float64: 1e-13}.get(dt, 0),
              what=name)


@pytest.mark.parametrize("dt", INTS)
def test_unary_int(dt):
    r = rng(17)
    a = r.integers(-100, 100, (4, 6))
    x = T(a, dt)
    for f, ref in [(so.neg, np.negative), (so.abs, np.abs), (so.sign, np.sign),
                   (so.relu, lambda v: np.maximum(v, 0)), (so.square, np.square)]:
        got = f(x)
        assert got.dtype == dt
        check(got, ref(a).astype(NP[dt]))
    s = so.sqrt(T(np.abs(a), dt))
    assert s.dtype == so.float32
    check(s, np.sqrt(np.abs(a)), so.float32)
    with pytest.raises(RuntimeError, match="floating point"):
        so.gelu(x)


def test_gelu_backward_matches_finite_difference():
    from shardopt._ops import elementwise as ew
    r = rng(18)
    a = r.uniform(-4, 4, 200)
    x, g = T(a, so.float64), T(r.standard_normal(200), so.float64)
    for approx in ("none", "tanh"):
        h = 1e-6
        fd = (N(so.gelu(T(a + h, so.float64), approximate=approx)) -
              N(so.gelu(T(a - h, so.float64), approximate=approx))) / (2 * h)
        check(ew._gelu_backward(g, x, approximate=approx), N(g) * fd, rtol=1e-7, atol=1e-8)


def test_neg_bool_and_nan_semantics():
    with pytest.raises(RuntimeError, match="Negation"):
        -T([True, False], so.bool)
    nan = float("nan")
    x = T([nan, 1.0, -2.0], so.float32)
    y = T([0.0, nan, -3.0], so.float32)
    check(so.maximum(x, y), np.array([nan, nan, -2.0]))
    check(so.minimum(x, y), np.array([nan, nan, -3.0]))
    check(so.clamp(x, -1, 0.5), np.array([nan, 0.5, -1.0]))
    check(so.relu(x), np.array([nan, 1.0, 0.0]))
    check(x == x, np.array([False, True, True]))


# ------------------------------------------------------------------ clamp, where, fused

@pytest.mark.parametrize("dt", [so.float32, so.float64, so.int64, so.float16])
def test_clamp_variants(dt):
    r = rng(19)
    a = data((5, 6), dt, r)
    x = T(a, dt)
    v = N(x)
    check(so.clamp(x, -1, 2), np.clip(v, -1, 2), dt)
    check(x.clamp(min=0), np.maximum(v, 0), dt)
    check(x.clip(max=1), np.minimum(v, 1), dt)
    check(so.clamp(x, 2, -1), np.full_like(v, -1), dt)  # min > max -> max, like torch
    lo = T(data((6,), dt, r, lo=-2, hi=0), dt)
    hi = T(data((5, 1), dt, r, lo=0.5, hi=2), dt)
    check(so.clamp(x, lo, hi), np.minimum(np.maximum(v, N(lo)), N(hi)), dt)
    check(so.clamp(x, min=lo), np.maximum(v, N(lo)), dt)
    check(so.clamp(x, lo, 1), np.minimum(np.maximum(v, N(lo)), 1), dt)
    check(so.clamp_max(x, hi), np.minimum(v, N(hi)), dt)
    y = x.clone()
    ver = y._version
    assert y.clamp_(-1, 1) is y
    assert y._version == ver + 1
    check(y, np.clip(v, -1, 1), dt)
    with pytest.raises(RuntimeError, match="At least one"):
        so.clamp(x)
    if dt in INTS:
        with pytest.raises(RuntimeError, match="can't be cast"):
            x.clamp_(min=0.5)


def test_where():
    r = rng(20)
    c = T(r.random((3, 1, 4)) < 0.5, so.bool)
    x = T(r.standard_normal((5, 4)), so.float32)
    y = T(r.integers(-5, 5, (4,)), so.int64)
    got = so.where(c, x, y)
    assert got.dtype == so.float32 and tuple(got.shape) == (3, 5, 4)
    check(got, np.where(N(c), N(x), N(y)))
    check(so.where(c, 1.5, x), np.where(N(c), 1.5, N(x)), so.float32)
    check(x.where(x > 0, 0.0), np.where(N(x) > 0, N(x), 0.0))
    xd = T(r.standard_normal((4, 8)), so.float64)[:, ::2]
    check(so.where(xd > 0, xd, -xd), np.abs(N(xd)))
    with pytest.raises(RuntimeError, match="boolean tensor"):
        so.where(x, x, x)


@pytest.mark.parametrize("dt", [so.float32, so.float64, so.float16, so.bfloat16])
def test_addcmul_addcdiv_lerp(dt):
    r = rng(21)
    s, a, b = (r.standard_normal((4, 5)), r.standard_normal((4, 5)), r.uniform(0.5, 2, (5,)))
    xs, xa, xb = T(s, dt), T(a, dt), T(b, dt)
    S, A, B = N(xs), N(xa), N(xb)
    rt = RTOL[dt] * 2
    check(so.addcmul(xs, xa, xb, value=0.5), S + 0.5 * A * B, dt, rtol=rt, atol=rt)
    check(so.addcdiv(xs, xa, xb, value=-2), S - 2 * A / B, dt, rtol=rt, atol=rt)
    check(so.lerp(xs, xa, 0.3), S + 0.3 * (A - S), dt, rtol=rt, atol=rt)
    check(so.lerp(xs, xa, 0.8), A - (A - S) * 0.2, dt, rtol=rt, atol=rt)
    w = T(r.random((4, 5)), dt)
    check(xs.lerp(xa, w), S + N(w) * (A - S), dt, rtol=rt, atol=rt)
    y = xs.clone()
    v = y._version
    assert y.addcmul_(xa, xb, value=2) is y
    check(y, S + 2 * A * B, dt, rtol=rt, atol=rt)
    y = xs.clone()
    y.addcdiv_(xa, xb)
    check(y, S + A / B, dt, rtol=rt, atol=rt)
    y = xs.clone()
    y.lerp_(xa, 0.25)
    check(y, S + 0.25 * (A - S), dt, rtol=rt, atol=rt)
    assert y._version == v + 1
    if dt != so.float64:
        with pytest.raises(RuntimeError, match="expected dtype"):
            so.lerp(xs, xa.double(), 0.5)


def test_addcmul_int_rules():
    xi = T([1, 2, 3], so.int64)
    check(so.addcmul(xi, xi, xi, value=2), np.array([3, 10, 21]))
    with pytest.raises(RuntimeError, match="value must not be a floating point"):
        so.addcmul(xi, xi, xi, value=0.5)
    with pytest.raises(RuntimeError, match="Integer division"):
        so.addcdiv(xi, xi, xi)


# ------------------------------------------------------------------ in-place

def test_inplace_ops_keep_dtype_and_bump_version():
    r = rng(22)
    a = r.standard_normal((3, 4))
    x = T(a, so.float16)
    v = x._version
    assert x.add_(T(r.standard_normal(4), so.float32)) is x
    assert x.dtype == so.float16 and x._version == v + 1
    x = T(a, so.float32)
    ref = N(x)
    x.mul_(2).sub_(1, alpha=0.5).div_(4)
    check(x, (ref * 2 - 0.5) / 4, so.float32)
    assert x._version == v + 3
    for name, f in [("neg_", np.negative), ("abs_", np.abs), ("relu_", lambda q: np.maximum(q, 0)),
                    ("exp_", np.exp)]:
        y = T(a, so.float64)
        assert getattr(y, name)() is y
        check(y, f(a), so.float64)
    y = T(np.abs(a), so.float64)
    y.sqrt_()
    check(y, np.sqrt(np.abs(a)))
    i = T([1, 2, 3], so.int32)
    i += 1
    i *= 3
    check(i, np.array([6, 9, 12], np.int32))
    assert i.dtype == so.int32
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output "
                                           "type Long"):
        T([1, 2], so.int64).add_(1.5)
    with pytest.raises(RuntimeError, match="result type Float can't be cast"):
        j = T([1, 2], so.int64)
        j /= 2
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Bool"):
        T([True], so.bool).add_(1)
    with pytest.raises(RuntimeError, match=r"output with shape \[4\] doesn't match the broadcast "
                                           r"shape \[3, 4\]"):
        T(a[0], so.float64).add_(T(a, so.float64))


def test_inplace_aliasing():
    r = rng(23)
    a = r.standard_normal((5, 5))
    x = T(a, so.float64)
    x.add_(x)
    check(x, 2 * a)
    x = T(a, so.float64)
    x.mul_(x).addcmul_(x, x)
    check(x, a * a + (a * a) ** 2)
    # partial overlap: NumPy semantics (the input is read as it was before the op)
    x = T(a.ravel(), so.float64)
    x[1:].add_(x[:-1])
    exp = a.ravel().copy()
    exp[1:] += a.ravel()[:-1]
    check(x, exp)
    x = T(a, so.float64)
    x.add_(x.t())
    check(x, a + a.T)
    # the output may not be a broadcast (stride-0) view
    e = T([1.0], so.float64).expand(3)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        e.add_(1)


def test_out_argument():
    r = rng(24)
    x = T(r.standard_normal((2, 3)), so.float32)
    out = T(np.full((2, 3), np.nan), so.float64)
    v = out._version
    res = so.add(x, 1, out=out)
    assert res is out and out._version == v + 1
    check(out, N(x) + 1, so.float64, rtol=1e-7)
    o2 = T(np.zeros((2, 3)), so.int64)
    with pytest.raises(RuntimeError, match="can't be cast"):
        so.mul(x, x, out=o2)


# ------------------------------------------------------------------ equal / allclose / bool

def test_equal_allclose_isclose():
    r = rng(25)
    a = r.standard_normal((4, 6))
    x = T(a, so.float32)
    assert so.equal(x, x.clone()) is True
    assert x.equal(x[:, :]) is True
    y = x.clone()
    y[1, 2] = 5.0
    assert so.equal(x, y) is False
    assert so.equal(x, x[:2]) is False
    assert so.equal(T([1, 2], so.int64), T([1.0, 2.0], so.float32)) is True
    nan = float("nan")
    assert so.equal(T([nan], so.float32), T([nan], so.float32)) is False
    z = T(a * (1 + 1e-6), so.float32)
    assert so.allclose(x, z) is True
    assert so.allclose(x, z, rtol=0, atol=0) is bool((N(x) == N(z)).all())
    assert so.allclose(x, x + 1e-3) is False
    assert so.allclose(x, x + 1e-3, atol=1e-2) is True
    n = T([nan, 1.0, float("inf")], so.float64)
    check(so.isclose(n, n), np.array([False, True, True]))
    check(n.isclose(n, equal_nan=True), np.array([True, True, True]))
    b = T(r.standard_normal(50), so.float64)
    c = T(N(b) + r.standard_normal(50) * 1e-6, so.float64)
    check(so.isclose(b, c, rtol=1e-5, atol=1e-7),
          np.isclose(N(b), N(c), rtol=1e-5, atol=1e-7))
    with pytest.raises(RuntimeError, match="did not match"):
        so.allclose(x, x.double())
    assert so.allclose(T(np.zeros(0), so.float32), T(np.zeros(0), so.float32)) is True


def test_bool_and_hash():
    assert bool(T([3.0], so.float32)) is True
    assert bool(T(np.float32(0.0), so.float32)) is False
    assert bool(T([[1]], so.int64) == 1) is True
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        bool(T([1, 2], so.int32))
    with pytest.raises(RuntimeError, match="no values"):
        bool(T(np.zeros(0), so.int32))
    x = T([1.0], so.float32)
    assert hash(x) == hash(x)
    assert len({x, x.clone()}) == 2
    assert (x == None) is False  # noqa: E711 - torch returns False too
    assert (x != "a") is True


# ------------------------------------------------------------------ errors

def test_error_messages():
    x = T(np.ones((2, 3)), so.float32)
    y = T(np.ones((4,)), so.float32)
    with pytest.raises(RuntimeError, match=r"\[2, 3\] and \[4\]"):
        x + y
    with pytest.raises(RuntimeError, match=r"size of tensor a \(3\) must match the size of tensor "
                                           r"b \(4\)"):
        so.mul(x, y)
    with pytest.raises(TypeError, match="unsupported operand"):
        x + "a"
    with pytest.raises(TypeError, match=r"add\(\): argument 'other' must be Tensor or a number, not "
                                        r"str"):
        so.add(x, "a")
    with pytest.raises(TypeError, match="must be Tensor"):
        so.sqrt(2.0)
    with pytest.raises(TypeError, match="at least one argument to be a Tensor"):
        so.add(1, 2)
    with pytest.raises(TypeError):
        so.add(x, x, beta=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'alpha'"):
        so.mul(x, x, alpha=2)
    with pytest.raises(RuntimeError, match="Overflow"):
        x + 2**70
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool"):
        T([True], so.bool) - T([False], so.bool)
    with pytest.raises(RuntimeError, match="approximate"):
        so.gelu(x, approximate="fast")


def test_module_surface():
    from shardopt._ops import elementwise as ew
    for name in ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "clamp",
                 "sqrt", "exp", "log", "sign", "gelu", "relu", "addcmul", "addcdiv", "lerp",
                 "equal", "allclose", "isclose", "eq", "ne", "lt", "le", "gt", "ge", "neg", "abs"):
        # shardopt.<name> may be the autograd wrapper; it exposes the raw op as __wrapped__
        public = getattr(so, name)
        assert name in ew.__all__ and getattr(public, "__wrapped__", public) is getattr(ew, name)
    # where() also takes the 1-argument form: the indexing area's function over ew.where
    from shardopt._ops import indexing
    assert so.where.__wrapped__ is indexing.where and "where" in ew.__all__
    for name in ("add_", "sub_", "mul_", "div_", "addcmul_", "addcdiv_", "lerp_", "clamp_",
                 "neg_", "abs_", "sqrt_", "relu_", "__radd__", "__rpow__", "__rtruediv__",
                 "__iadd__", "__bool__", "__hash__"):
        assert hasattr(so.Tensor, name)


# ------------------------------------------------------------------ CUDA vs CPU

CUDA_CASES = [
    ("add", lambda x, y: x + y), ("sub_alpha", lambda x, y: so.sub(x, y, alpha=0.5)),
    ("mul", lambda x, y: x * y), ("div", lambda x, y: x / y),
    ("floor", lambda x, y: so.div(x, y, rounding_mode="floor")),
    ("pow", lambda x, y: so.abs(x) ** y), ("max", so.maximum), ("min", so.minimum),
    ("lt", lambda x, y: x < y), ("eq", lambda x, y: x == y), ("where", lambda x, y: so.where(x > y, x, y)),
    ("addcmul", lambda x, y: so.addcmul(x, y, y, value=0.5)),
    ("addcdiv", lambda x, y: so.addcdiv(x, x, y, value=2)),
    ("lerp", lambda x, y: so.lerp(x, y, 0.7)), ("clamp", lambda x, y: so.clamp(x, -0.5, y)),
    ("scalar", lambda x, y: 2.5 * x - 1), ("rpow", lambda x, y: 2 ** x),
    ("gelu", lambda x, y: so.gelu(x)), ("gelu_tanh", lambda x, y: so.gelu(x, approximate="tanh")),
    ("exp", lambda x, y: so.exp(x)), ("sqrt", lambda x, y: so.sqrt(so.abs(y))),
    ("relu", lambda x, y: so.relu(x)), ("sign", lambda x, y: so.sign(x)),
]


@pytest.mark.cuda
@pytest.mark.parametrize("name,f", CUDA_CASES, ids=[c[0] for c in CUDA_CASES])
@pytest.mark.parametrize("dt", [so.float32, so.float64, so.float16, so.bfloat16, so.int64])
def test_cuda_matches_cpu(name, f, dt):
    if dt == so.int64 and name in ("addcdiv", "lerp", "gelu", "gelu_tanh", "pow", "rpow"):
        pytest.skip("float-only op")
    r = rng(30)
    a = data((3, 1, 40), dt, r, nonzero=True)
    b = data((5, 40), dt, r, nonzero=True)
    xc, yc = T(a, dt), T(b, dt)
    xg, yg = xc.cuda(), yc.cuda()
    want = f(xc, yc)
    got = f(xg, yg)
    assert got.is_cuda and got.dtype == want.dtype and got.shape == want.shape
    check(got, N(want), want.dtype, rtol=None if want.dtype not in RTOL else 4 * RTOL[want.dtype],
          atol=1e-6, what=f"cuda {name}")
    # strided / transposed / mixed dtype operands
    xs = T(data((40, 6), dt, r), dt).cuda().t()[:, ::2]
    ys = T(data((5, 1, 3), so.float32, r), so.float32).cuda()
    check(xs + ys, N(xs.cpu() + ys.cpu()), rtol=1e-6 if dt != so.float16 else 2e-3, atol=1e-6)


@pytest.mark.cuda
def test_cuda_inplace_and_devices():
    r = rng(31)
    a = r.standard_normal((64, 33))
    x = T(a, so.float32).cuda()
    v = x._version
    x.add_(x).mul_(0.5).addcmul_(x, x, value=2)
    assert x._version == v + 3
    ref = T(a, so.float32)
    ref.add_(ref).mul_(0.5).addcmul_(ref, ref, value=2)
    check(x, N(ref), so.float32, rtol=1e-6)
    y = T(a, so.float32).cuda()
    y[1:].add_(y[:-1])  # partial overlap handled on CUDA too
    e = a.copy()
    e[1:] += a[:-1]
    check(y, e, so.float32)
    s = x + T(np.float64(2.0), so.float64)  # 0-d CPU tensor joins CUDA tensors
    assert s.is_cuda and s.dtype == so.float32
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, but "
                                           "found at least two devices, cuda:0 and cpu!"):
        x + T(a, so.float32)
    with pytest.raises(RuntimeError, match="same device"):
        T(a, so.float32).add_(x)
    assert so.allclose(x, x.clone()) is True
    assert so.equal(x, x + 1) is False
    assert bool(x[0, 0] == x[0, 0])
    big = T(np.arange(3 * 2**20, dtype=np.float32), so.float32).cuda()
    check(big * 2 + 1, np.arange(3 * 2**20) * 2.0 + 1)
