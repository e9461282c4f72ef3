"""shardopt.testing's assertEqual: torch's dtype-aware tolerances, shape/dtype checks."""
import math

import numpy as np
import pytest

from shardopt.testing import TestCase, assert_equal

tc = TestCase()


@pytest.mark.parametrize("dtype,rtol,atol", [
    (np.float32, 1.3e-6, 1e-5), (np.float64, 1e-7, 1e-7), (np.float16, 1e-3, 1e-5)])
def test_float_tolerances(dtype, rtol, atol):
    a = np.array([1.0, 100.0, 0.0], dtype=dtype)
    inside = np.array([1.0 + rtol / 2, 100.0, atol / 2], dtype=np.float64).astype(dtype)
    tc.assertEqual(a, inside)
    outside = np.array([1.0, 100.0 * (1 + 8 * rtol) + 4 * atol, 0.0]).astype(dtype)
    with pytest.raises(AssertionError, match="not close"):
        tc.assertEqual(a, outside)
    tc.assertNotEqual(a, outside)


def test_ints_and_bools_are_exact():
    tc.assertEqual(np.arange(4), np.arange(4))
    with pytest.raises(AssertionError, match="Mismatched elements: 1 / 4"):
        tc.assertEqual(np.arange(4), np.array([0, 1, 2, 4]))
    with pytest.raises(AssertionError):
        tc.assertEqual(np.array([True, False]), np.array([True, True]))


def test_dtype_and_shape_must_match():
    with pytest.raises(AssertionError, match="dtype"):
        tc.assertEqual(np.zeros(3, np.float32), np.zeros(3, np.float64))
    tc.assertEqual(np.zeros(3, np.float32), np.zeros(3, np.float64), exact_dtype=False)
    with pytest.raises(AssertionError, match="shape"):
        tc.assertEqual(np.zeros((2, 3)), np.zeros((3, 2)))


def test_explicit_tolerance_and_nan():
    tc.assertEqual(np.array([1.0]), np.array([1.1]), atol=0.2, rtol=0)
    with pytest.raises(ValueError):
        tc.assertEqual(np.array([1.0]), np.array([1.1]), atol=0.2)
    tc.assertEqual(np.array([math.nan, math.inf]), np.array([math.nan, math.inf]))
    with pytest.raises(AssertionError):
        tc.assertEqual(np.array([math.nan]), np.array([math.nan]), equal_nan=False)
    with pytest.raises(AssertionError):
        tc.assertEqual(np.array([math.inf]), np.array([-math.inf]))


def test_python_values_and_containers():
    tc.assertEqual(1.0, 1.0 + 1e-9)
    tc.assertNotEqual(1.0, 1.001)
    tc.assertEqual(3, 3)
    tc.assertEqual([np.ones(2), {"a": (1, 2.0)}], [np.ones(2), {"a": (1, 2.0)}])
    with pytest.raises(AssertionError, match=r"\[1\]\['a'\]\[1\]"):
        tc.assertEqual([np.ones(2), {"a": (1, 2.0)}], [np.ones(2), {"a": (1, 3.0)}])
    with pytest.raises(AssertionError, match="length"):
        tc.assertEqual([1, 2], [1])
    tc.assertEqual(np.array([1.0, 2.0]), [1.0, 2.0])  # a list takes the array's dtype
    tc.assertEqual("abc", "abc")
    with pytest.raises(AssertionError, match="custom"):
        tc.assertEqual(1, 2, msg="custom")


def test_tensors_if_available():
    shardopt = pytest.importorskip("shardopt")
    if not hasattr(shardopt, "tensor"):
        pytest.skip("Tensor core not built")
    a = shardopt.tensor([1.0, 2.0, 3.0])
    tc.assertEqual(a, a)
    tc.assertEqual(a, np.array([1.0, 2.0, 3.0], dtype=np.float32))
    tc.assertNotEqual(a, shardopt.tensor([1.0, 2.0, 4.0]))
    with pytest.raises(AssertionError, match="dtype"):
        tc.assertEqual(a, a.to(shardopt.float64))
    tc.assertEqual(a, a.to(shardopt.float64), exact_dtype=False)
    b = a.to(shardopt.bfloat16)
    tc.assertEqual(b, b)
    tc.assertEqual(shardopt.tensor([1, 2]), shardopt.tensor([1, 2]))
    with pytest.raises(AssertionError):
        tc.assertEqual(shardopt.tensor([1, 2]), shardopt.tensor([1, 3]))
