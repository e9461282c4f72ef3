"""Philox RNG: known answers, bit-exact agreement with an independent NumPy model of
csrc/ops/philox.h, determinism, generator state, statistics, and CPU == CUDA bits.

The NumPy model uses only correctly rounded float32/float64 ufuncs (one rounding per
operation), so matching it bit for bit shows the C build computes every operation exactly as
written (no FMA contraction, no reordering) — the property that makes the CUDA kernel, which
uses explicitly rounded intrinsics, produce the same bits.
"""
import math

import numpy as np
import pytest

import shardopt
from shardopt import _C

MASK = np.uint64(0xFFFFFFFF)
F32 = np.float32
F64 = np.float64
FLOAT_DTYPES = [shardopt.float32, shardopt.float64, shardopt.float16, shardopt.bfloat16]


# ------------------------------------------------------------------ NumPy model

def philox_ref(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint64 arrays holding 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    k0, k1 = np.uint64(k0), np.uint64(k1)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & MASK,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & MASK)
        k0 = (k0 + np.uint64(0x9E3779B9)) & MASK
        k1 = (k1 + np.uint64(0xBB67AE85)) & MASK
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def blocks_ref(seed, offset, nblocks):
    b = np.arange(nblocks, dtype=np.uint64) + np.uint64(offset)
    z = np.zeros_like(b)
    return philox_ref(b & MASK, b >> np.uint64(32), z, z, seed & 0xFFFFFFFF, seed >> 32)


def logf_ref(x):
    fx = lambda h: F32(float.fromhex(h))  # noqa: E731
    ln2_hi, ln2_lo = fx("0x1.62e300p-1"), fx("0x1.2fefa2p-17")
    Lg1, Lg2, Lg3, Lg4 = fx("0x1.555554p-1"), fx("0x1.999c26p-2"), fx("0x1.23d3dcp-2"), fx("0x1.f13c4cp-3")
    ix = x.view(np.uint32) + np.uint32(0x3F800000 - 0x3F3504F3)
    k = (ix >> np.uint32(23)).astype(np.int32) - 0x7F
    ix = (ix & np.uint32(0x7FFFFF)) + np.uint32(0x3F3504F3)
    f = ix.view(F32) - F32(1)
    s = f / (F32(2) + f)
    z = s * s
    w = z * z
    R = z * (Lg1 + w * Lg3) + w * (Lg2 + w * Lg4)
    hfsq = (F32(0.5) * f) * f
    dk = k.astype(F32)
    return (((s * (hfsq + R) + dk * ln2_lo) - hfsq) + f) + dk * ln2_hi


def log_ref(x):
    fx = float.fromhex
    ln2_hi, ln2_lo = fx("0x1.62e42fee00000p-1"), fx("0x1.a39ef35793c76p-33")
    Lg = [fx(h) for h in ("0x1.5555555555593p-1", "0x1.999999997fa04p-2", "0x1.2492494229359p-2",
                          "0x1.c71c51d8e78afp-3", "0x1.7466496cb03dep-3", "0x1.39a09d078c69fp-3",
                          "0x1.2f112df3e5244p-3")]
    u = x.view(np.uint64)
    hx = (u >> np.uint64(32)).astype(np.uint32) + np.uint32(0x3FF00000 - 0x3FE6A09E)
    k = (hx >> np.uint32(20)).astype(np.int32) - 0x3FF
    hx = (hx & np.uint32(0xFFFFF)) + np.uint32(0x3FE6A09E)
    xr = ((hx.astype(np.uint64) << np.uint64(32)) | (u & MASK)).view(F64)
    f = xr - 1.0
    hfsq = (0.5 * f) * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (Lg[1] + w * (Lg[3] + w * Lg[5]))
    t2 = z * (Lg[0] + w * (Lg[2] + w * (Lg[4] + w * Lg[6])))
    dk = k.astype(F64)
    return (((s * (hfsq + (t2 + t1)) + dk * ln2_lo) - hfsq) + f) + dk * ln2_hi


def _quadrant(q, sn, cs):
    q = q & 3
    s = np.select([q == 0, q == 1, q == 2], [sn, cs, -sn], -cs)
    c = np.select([q == 0, q == 1, q == 2], [cs, -sn, -cs], sn)
    return s, c


def sincos_f32_ref(k):
    fx = lambda h: F32(float.fromhex(h))  # noqa: E731
    S = [fx(h) for h in ("-0x1.555556p-3", "0x1.111112p-7", "-0x1.a01a02p-13", "0x1.71de3ap-19")]
    C = [fx(h) for h in ("-0x1.0p-1", "0x1.555556p-5", "-0x1.6c16c2p-10", "0x1.a01a02p-16",
                         "-0x1.27e4fcp-22")]
    q = (k.astype(np.int64) + (1 << 21)) >> 22
    rem = k.astype(np.int64) - (q << 22)
    a = rem.astype(np.int32).astype(F32) * fx("0x1.921fb6p-22")
    z = a * a
    sn = a + (a * z) * (S[0] + z * (S[1] + z * (S[2] + z * S[3])))
    cs = F32(1) + z * (C[0] + z * (C[1] + z * (C[2] + z * (C[3] + z * C[4]))))
    return _quadrant(q, sn, cs)


def sincos_f64_ref(k):
    fx = float.fromhex
    S = [fx(h) for h in ("-0x1.5555555555555p-3", "0x1.1111111111111p-7", "-0x1.a01a01a01a01ap-13",
                         "0x1.71de3a556c734p-19", "-0x1.ae64567f544e4p-26", "0x1.6124613a86d09p-33",
                         "-0x1.ae7f3e733b81fp-41", "0x1.952c77030ad4ap-49")]
    C = [fx(h) for h in ("-0x1.0p-1", "0x1.5555555555555p-5", "-0x1.6c16c16c16c17p-10",
                         "0x1.a01a01a01a01ap-16", "-0x1.27e4fb7789f5cp-22", "0x1.1eed8eff8d898p-29",
                         "-0x1.93974a8c07c9dp-37", "0x1.ae7f3e733b81fp-45", "-0x1.6827863b97d97p-53")]
    k = k.astype(np.int64)
    q = (k + (1 << 50)) >> 51
    rem = k - (q << 51)
    a = rem.astype(F64) * fx("0x1.921fb54442d18p-51")
    z = a * a
    ps = S[6] + z * S[7]
    for c in reversed(S[:6]):
        ps = c + z * ps
    pc = C[7] + z * C[8]
    for c in reversed(C[:7]):
        pc = c + z * pc
    return _quadrant(q, a + (a * z) * ps, 1.0 + z * pc)


def bf16_round(x32):
    u = x32.view(np.uint32).astype(np.uint64)
    u = (u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return (u.astype(np.uint32) << np.uint32(16)).view(F32)


def draw_ref(kind, dtype, seed, offset, n):
    """What rand/randn of n elements produce from (seed, offset), as float64 values."""
    if dtype == shardopt.float64:
        nb = -(-n // 2)
        x = blocks_ref(seed, offset, nb).astype(np.uint64)
        w0 = (x[:, 0] << np.uint64(32)) | x[:, 1]
        w1 = (x[:, 2] << np.uint64(32)) | x[:, 3]
        if kind == "uniform":
            v = np.stack([(w0 >> np.uint64(11)).astype(F64) * 2.0**-53,
                          (w1 >> np.uint64(11)).astype(F64) * 2.0**-53], axis=1)
        else:
            u1 = ((w0 >> np.uint64(11)).astype(np.int64) + 1).astype(F64) * 2.0**-53
            r = np.sqrt(-2.0 * log_ref(u1))
            sn, cs = sincos_f64_ref(w1 >> np.uint64(11))
            v = np.stack([r * cs, r * sn], axis=1)
        return v.reshape(-1)[:n]
    nb = -(-n // 4)
    x = blocks_ref(seed, offset, nb)
    if kind == "uniform":
        shift, scale = {shardopt.float16: (21, 2.0**-11), shardopt.bfloat16: (24, 2.0**-8)}.get(
            dtype, (8, 2.0**-24))
        v = (x >> np.uint32(shift)).astype(np.int32).astype(F32) * F32(scale)
    else:
        v = np.empty(x.shape, dtype=F32)
        for p in range(2):
            u1 = (x[:, 2 * p].astype(np.int64) + 1).astype(F32) * F32(2.0**-32)
            r = np.sqrt(F32(-2) * logf_ref(u1))
            sn, cs = sincos_f32_ref(x[:, 2 * p + 1] >> np.uint32(8))
            v[:, 2 * p] = r * cs
            v[:, 2 * p + 1] = r * sn
    v = v.reshape(-1)[:n]
    if dtype == shardopt.float16:
        v = v.astype(np.float16).astype(F32)
    elif dtype == shardopt.bfloat16:
        v = bf16_round(v)
    return v.astype(F64)


def values(t):
    """float64 ndarray of t's values (bfloat16 through float32)."""
    return np.asarray(t.to(device="cpu", dtype=shardopt.float64).numpy(), dtype=F64)


def bits_equal(a, b):
    a, b = np.asarray(a, dtype=F64), np.asarray(b, dtype=F64)
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


# ------------------------------------------------------------------ known answers

# Random123's kat_vectors for philox4x32 with 10 rounds: (ctr[4], key[2]) -> out[4]
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_model_matches_random123_known_answers(ctr, key, expected):
    out = philox_ref(*[np.array([c], dtype=np.uint64) for c in ctr], *key)[0]
    assert tuple(int(v) for v in out) == expected


def test_c_philox_matches_known_answer_and_model():
    assert _C._philox(0, 0) == KAT[0][2]
    rng = np.random.default_rng()
    for _ in range(20):
        seed = int(rng.integers(0, 2**64, dtype=np.uint64))
        block = int(rng.integers(0, 2**64, dtype=np.uint64))
        ref = blocks_ref(seed, block, 1)[0]
        assert _C._philox(seed, block) == tuple(int(v) for v in ref)


def test_log_and_sincos_models_are_accurate():
    # the libm-free functions the kernels share: within a few ulp of NumPy's libm
    x32 = np.random.default_rng().uniform(2.0**-32, 1.0, 100000).astype(F32)
    err = np.abs(logf_ref(x32).astype(F64) - np.log(x32.astype(F64)))
    assert np.all(err <= 2 * np.spacing(np.abs(np.log(x32)).astype(F32)).astype(F64) + 1e-12)
    x64 = np.random.default_rng().uniform(2.0**-53, 1.0, 100000)
    assert np.allclose(log_ref(x64), np.log(x64), rtol=4e-16, atol=0)
    k = np.random.default_rng().integers(0, 2**24, 100000)
    sn, cs = sincos_f32_ref(k)
    ang = 2 * np.pi * k / 2.0**24
    assert np.max(np.abs(sn - np.sin(ang))) < 3e-7 and np.max(np.abs(cs - np.cos(ang))) < 3e-7
    k = np.random.default_rng().integers(0, 2**53, 100000, dtype=np.int64)
    sn, cs = sincos_f64_ref(k)
    ang = 2 * np.pi * (k / 2.0**53)
    assert np.max(np.abs(sn - np.sin(ang))) < 1e-15 and np.max(np.abs(cs - np.cos(ang))) < 1e-15


# ------------------------------------------------------------------ bits vs the model

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("n", [1, 3, 4, 5, 1003])
def test_rand_and_randn_bits_match_model(dtype, n):
    seed = int(np.random.default_rng().integers(0, 2**63))
    shardopt.manual_seed(seed)
    u = shardopt.rand(n, dtype=dtype)
    z = shardopt.randn(n, dtype=dtype)
    per = 2 if dtype == shardopt.float64 else 4
    nb = -(-n // per)
    assert u.dtype == dtype and z.dtype == dtype and u.shape == (n,)
    assert bits_equal(values(u), draw_ref("uniform", dtype, seed, 0, n))
    assert bits_equal(values(z), draw_ref("normal", dtype, seed, nb, n))
    assert shardopt.default_generator._offset == 2 * nb


def test_randn_matches_libm_box_muller_closely():
    shardopt.manual_seed(5)
    z = shardopt.randn(4000, dtype=shardopt.float64).numpy()
    x = blocks_ref(5, 0, 2000).astype(np.uint64)
    w0 = (x[:, 0] << np.uint64(32)) | x[:, 1]
    w1 = (x[:, 2] << np.uint64(32)) | x[:, 3]
    u1 = ((w0 >> np.uint64(11)).astype(F64) + 1) * 2.0**-53
    t = (w1 >> np.uint64(11)).astype(F64) * 2.0**-53
    r = np.sqrt(-2 * np.log(u1))
    ref = np.stack([r * np.cos(2 * np.pi * t), r * np.sin(2 * np.pi * t)], axis=1).reshape(-1)
    np.testing.assert_allclose(z, ref, rtol=1e-13, atol=1e-14)


def test_large_seed_and_offset_words():
    g = shardopt.Generator()
    seed = 0xFEDCBA9876543210
    g.set_state(np.array([seed - 2**64, 2**32 - 1], dtype=np.int64).tobytes())
    u = shardopt.rand(10, generator=g)
    assert bits_equal(values(u), draw_ref("uniform", shardopt.float32, seed, 2**32 - 1, 10))
    assert g._offset == 2**32 - 1 + 3


# ------------------------------------------------------------------ determinism and state

def test_same_seed_same_bits_different_seed_differs():
    shardopt.manual_seed(123)
    a, b = shardopt.rand(100), shardopt.randn(3, 7)
    shardopt.manual_seed(123)
    a2, b2 = shardopt.rand(100), shardopt.randn(3, 7)
    assert bits_equal(values(a), values(a2)) and bits_equal(values(b), values(b2))
    shardopt.manual_seed(124)
    assert not np.array_equal(values(shardopt.rand(100)), values(a))


def test_state_advances_by_blocks_drawn():
    shardopt.manual_seed(7)
    g = shardopt.default_generator
    assert g._offset == 0
    first = values(shardopt.rand(8))
    assert g._offset == 2
    second = values(shardopt.rand(8))
    assert g._offset == 4
    assert not np.array_equal(first, second)
    shardopt.manual_seed(7)
    both = values(shardopt.rand(16))
    assert bits_equal(both, np.concatenate([first, second]))
    shardopt.rand(5)  # 5 float32 values use 2 blocks
    assert g._offset == 6
    shardopt.rand(3, dtype=shardopt.float64)  # 2 per block
    assert g._offset == 8
    shardopt.rand(0)
    assert g._offset == 8


def test_manual_seed_returns_default_generator_and_sets_initial_seed():
    g = shardopt.manual_seed(42)
    assert g is shardopt.default_generator
    assert shardopt.initial_seed() == 42
    shardopt.manual_seed(-1)
    assert shardopt.initial_seed() == 2**64 - 1
    shardopt.manual_seed(2**64 - 1)
    a = values(shardopt.rand(4))
    shardopt.manual_seed(-1)
    assert bits_equal(values(shardopt.rand(4)), a)
    with pytest.raises(RuntimeError, match="Overflow"):
        shardopt.manual_seed(2**64)
    with pytest.raises(RuntimeError, match="Overflow"):
        shardopt.manual_seed(-(2**63) - 1)
    with pytest.raises(TypeError, match="seed"):
        shardopt.manual_seed(1.5)
    with pytest.raises(TypeError, match="seed"):
        shardopt.manual_seed("1")
    shardopt.manual_seed(np.int64(9))
    assert shardopt.initial_seed() == 9


def test_seed_is_random_and_reproducible():
    s1 = shardopt.seed()
    a = values(shardopt.rand(6))
    s2 = shardopt.seed()
    assert s1 != s2 and 0 <= s1 < 2**53 and 0 <= s2 < 2**53
    assert shardopt.initial_seed() == s2
    shardopt.manual_seed(s1)
    assert bits_equal(values(shardopt.rand(6)), a)


def test_generator_object_is_independent_of_default():
    g = shardopt.Generator(device="cpu")
    assert g.device == shardopt.device("cpu")
    assert g.manual_seed(11) is g and g.initial_seed() == 11
    shardopt.manual_seed(0)
    a = values(shardopt.rand(10, generator=g))
    assert shardopt.default_generator._offset == 0
    b = values(shardopt.randn(10, generator=g, dtype=shardopt.float64))
    assert bits_equal(a, draw_ref("uniform", shardopt.float32, 11, 0, 10))
    assert bits_equal(b, draw_ref("normal", shardopt.float64, 11, 3, 10))
    assert g.seed() == g.initial_seed()
    assert "cpu" in repr(g)


def test_get_set_state_round_trip():
    g = shardopt.Generator().manual_seed(3)
    shardopt.rand(13, generator=g)
    state = g.get_state()
    assert state.dtype == shardopt.int64 and state.shape == (2,)
    assert state.tolist() == [3, 4]
    a = values(shardopt.randn(50, generator=g))
    assert g.set_state(state) is g
    assert bits_equal(values(shardopt.randn(50, generator=g)), a)
    g.set_state(state.numpy().tobytes())
    assert bits_equal(values(shardopt.randn(50, generator=g)), a)
    g.set_state(bytearray(state.numpy().tobytes()))
    assert bits_equal(values(shardopt.randn(50, generator=g)), a)
    # module-level helpers act on the CPU default generator
    shardopt.manual_seed(8)
    st = shardopt.get_rng_state()
    x = values(shardopt.rand(9))
    shardopt.set_rng_state(st)
    assert bits_equal(values(shardopt.rand(9)), x)


def test_set_state_rejects_bad_states():
    g = shardopt.Generator()
    with pytest.raises(RuntimeError, match="16 bytes"):
        g.set_state(b"123")
    with pytest.raises(RuntimeError, match="16 bytes"):
        g.set_state(shardopt.zeros(3, dtype=shardopt.int64))
    with pytest.raises(TypeError, match="new_state"):
        g.set_state([1, 2])


def test_generator_argument_errors():
    with pytest.raises(TypeError, match="generator"):
        shardopt.rand(3, generator="not a generator")
    with pytest.raises(TypeError):
        shardopt.Generator(device=3.5)
    with pytest.raises(TypeError, match="floating point"):
        shardopt.rand(3, dtype=shardopt.int64)
    with pytest.raises(TypeError, match="floating point"):
        shardopt.randn(3, dtype=shardopt.bool)


def test_uniform_normal_methods_affine_and_errors():
    shardopt.manual_seed(21)
    t = shardopt.empty(1000, dtype=shardopt.float64).uniform_(-2.0, 3.0)
    u = draw_ref("uniform", shardopt.float64, 21, 0, 1000)
    assert bits_equal(values(t), u * 5.0 + -2.0)
    assert values(t).min() >= -2.0 and values(t).max() < 3.0
    shardopt.manual_seed(21)
    t32 = shardopt.empty(1000).normal_(1.5, 0.25)
    z = draw_ref("normal", shardopt.float32, 21, 0, 1000).astype(F32)
    assert bits_equal(values(t32), (z * F32(0.25) + F32(1.5)).astype(F64))
    t = shardopt.zeros(4)
    assert t.uniform_(**{"from": 1.0, "to": 2.0}) is t
    assert np.all((values(t) >= 1.0) & (values(t) < 2.0))
    with pytest.raises(RuntimeError, match="from=2.0 > to=1.0"):
        shardopt.zeros(3).uniform_(2.0, 1.0)
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        shardopt.zeros(3).normal_(0.0, -1.0)
    with pytest.raises(TypeError, match="floating point"):
        shardopt.zeros(3, dtype=shardopt.int32).normal_()
    with pytest.raises(TypeError, match="mean"):
        shardopt.zeros(3).normal_("a")


def test_non_contiguous_fill_follows_row_major_order():
    base = shardopt.full((4, 6), float("nan"))
    view = base.t()  # (6, 4), not contiguous
    shardopt.manual_seed(99)
    view.uniform_()
    shardopt.manual_seed(99)
    ref = shardopt.rand(6, 4)
    assert bits_equal(values(view), values(ref))
    assert not np.isnan(values(base)).any()
    strided = shardopt.full((10,), -1.0)[::2]
    shardopt.manual_seed(99)
    strided.normal_()
    shardopt.manual_seed(99)
    assert bits_equal(values(strided), values(shardopt.randn(5)))


# ------------------------------------------------------------------ statistics

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_rand_statistics(dtype):
    shardopt.manual_seed(2024)
    u = values(shardopt.rand(200_000, dtype=dtype))
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005
    assert abs(u.std() - math.sqrt(1 / 12)) < 0.005
    hist, _ = np.histogram(u, bins=8, range=(0, 1))
    assert np.all(np.abs(hist / len(u) - 1 / 8) < 0.01)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_randn_statistics(dtype):
    shardopt.manual_seed(2025)
    z = values(shardopt.randn(200_000, dtype=dtype))
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(np.abs(z) < 1.0) - 0.6827) < 0.005
    assert abs(np.mean(np.abs(z) < 2.0) - 0.9545) < 0.003
    # adjacent lanes (cos/sin of one Box-Muller pair) are uncorrelated
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 0.01


def test_rand_like_randn_like_and_shapes():
    x = shardopt.zeros(2, 3, dtype=shardopt.float64)
    shardopt.manual_seed(1)
    a = shardopt.rand_like(x)
    shardopt.manual_seed(1)
    b = shardopt.rand(2, 3, dtype=shardopt.float64)
    assert a.shape == (2, 3) and a.dtype == shardopt.float64 and bits_equal(values(a), values(b))
    c = shardopt.randn_like(x, dtype=shardopt.float16)
    assert c.dtype == shardopt.float16 and c.shape == (2, 3)
    for size in [(2, 3), ((2, 3),), ([2, 3],), (shardopt.Size([2, 3]),)]:
        assert shardopt.rand(*size).shape == (2, 3)
        assert shardopt.randn(*size).shape == (2, 3)
    assert shardopt.rand(()).shape == () and shardopt.rand(0, 3).shape == (0, 3)
    t = shardopt.rand(2, requires_grad=True)
    assert t.requires_grad


# ------------------------------------------------------------------ CUDA == CPU

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("n", [1, 5, 4096, 100_003])
def test_cuda_bits_equal_cpu(dtype, n):
    shardopt.manual_seed(77)
    cpu_u, cpu_z = shardopt.rand(n, dtype=dtype), shardopt.randn(n, dtype=dtype)
    cuda_u = shardopt.rand(n, dtype=dtype, device="cuda")
    cuda_z = shardopt.randn(n, dtype=dtype, device="cuda")
    assert cuda_u.is_cuda and cuda_z.is_cuda
    assert bits_equal(values(cuda_u), values(cpu_u))
    assert bits_equal(values(cuda_z), values(cpu_z))
    g_cpu = shardopt.default_generator
    g_cuda = _C._default_generator("cuda:0")
    assert g_cuda._offset == g_cpu._offset


@pytest.mark.cuda
def test_cuda_generator_and_affine_and_strided():
    g = shardopt.Generator(device="cuda")
    g.manual_seed(5)
    a = shardopt.empty(3, 5, device="cuda").t().normal_(2.0, 0.5, generator=g)
    h = shardopt.Generator().manual_seed(5)
    b = shardopt.empty(3, 5).t().normal_(2.0, 0.5, generator=h)
    assert bits_equal(values(a), values(b))
    with pytest.raises(RuntimeError, match="device type for generator"):
        shardopt.rand(3, device="cuda", generator=h)
    with pytest.raises(RuntimeError, match="device type for generator"):
        shardopt.rand(3, generator=g)


def test_cuda_seeding_functions_without_touching_cpu_generator():
    shardopt.manual_seed(1)
    cpu_state = shardopt.get_rng_state().tolist()
    shardopt.cuda.manual_seed_all(17)
    shardopt.cuda.manual_seed(18)  # no-op without a GPU, seeds the current one with
    assert shardopt.get_rng_state().tolist() == cpu_state
    assert _C._default_generator(3).initial_seed() == 17
    if not shardopt.cuda.is_available():
        assert _C._default_generator(0).initial_seed() == 17
    with pytest.raises(TypeError, match="seed"):
        shardopt.cuda.manual_seed_all(None)
