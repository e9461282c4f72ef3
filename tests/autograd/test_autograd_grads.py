"""Gradients of every differentiable op against float64 central finite differences."""
import numpy as np
import pytest

import shardopt
from _ag_helpers import N, T, check_grads

rng = np.random.default_rng(1234)


def r(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape)


def pos(*shape):
    return rng.uniform(0.5, 2.0, size=shape)


def away_from_zero(*shape):
    a = rng.uniform(0.2, 1.0, size=shape)
    return a * rng.choice([-1.0, 1.0], size=shape)


BROADCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((3, 4), ()), ((), (2, 3)),
             ((1, 4), (3, 1)), ((0, 3), (3,))]


# ------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize("sa,sb", BROADCAST)
def test_add_sub_mul_broadcast(sa, sb):
    a, b = r(*sa), r(*sb)
    if 0 in sa:
        x, y = T(a, True), T(b, True)
        (x + y).sum().backward()
        assert N(x.grad).shape == sa and np.all(N(y.grad) == 0)
        return
    check_grads(lambda x, y: x + y, a, b)
    check_grads(lambda x, y: x - y, a, b)
    check_grads(lambda x, y: x * y, a, b)
    check_grads(lambda x, y: shardopt.add(x, y, alpha=2.5), a, b)
    check_grads(lambda x, y: x.sub(y, alpha=-0.5), a, b)
    check_grads(lambda x, y: shardopt.mul(x, y), a, b)


@pytest.mark.parametrize("sa,sb", BROADCAST[:6])
def test_div_broadcast(sa, sb):
    check_grads(lambda x, y: x / y, r(*sa), away_from_zero(*sb))
    check_grads(lambda x, y: shardopt.div(x, y), r(*sa), away_from_zero(*sb))


def test_only_one_operand_requires_grad():
    a, b = r(3, 4), r(4)
    check_grads(lambda x, y: x * y, a, b, wrt=[0])
    check_grads(lambda x, y: x * y, a, b, wrt=[1])
    check_grads(lambda x, y: x / y, a, away_from_zero(4), wrt=[1])


def test_scalar_operands_and_reflected_ops():
    a = away_from_zero(3, 5)
    check_grads(lambda x: x + 2.5, a)
    check_grads(lambda x: 2.5 + x, a)
    check_grads(lambda x: x - 1.5, a)
    check_grads(lambda x: 1.5 - x, a)
    check_grads(lambda x: x * -3.0, a)
    check_grads(lambda x: -3.0 * x, a)
    check_grads(lambda x: x / 4.0, a)
    check_grads(lambda x: 4.0 / x, a)
    check_grads(lambda x: -x, a)
    check_grads(lambda x: x.neg(), a)


def test_pow():
    a = pos(3, 4)
    check_grads(lambda x: x ** 3, a)
    check_grads(lambda x: x ** 0.5, a)
    check_grads(lambda x: x ** -2, a)
    check_grads(lambda x: x.pow(2.0), a)
    check_grads(lambda x: 2.0 ** x, r(3, 4))
    check_grads(lambda x, y: x ** y, a, r(4))
    check_grads(lambda x, y: shardopt.pow(x, y), a, r(3, 1))
    # x ** 0: gradient exactly 0
    x = T(a, True)
    (x ** 0).sum().backward()
    assert np.all(N(x.grad) == 0)


def test_pow_zero_base_gradient_is_zero_for_nonnegative_exponent():
    x = T(np.array([0.0, 0.0, 2.0]), True)
    y = T(np.array([2.0, 0.0, 3.0]), True)
    (x ** y).sum().backward()
    np.testing.assert_allclose(N(y.grad), [0.0, 0.0, 8.0 * np.log(2.0)])
    np.testing.assert_allclose(N(x.grad), [0.0, 0.0, 12.0])


@pytest.mark.parametrize("name,gen", [
    ("exp", r), ("log", pos), ("sqrt", pos), ("abs", away_from_zero), ("relu", away_from_zero),
    ("tanh", r), ("sigmoid", r), ("square", r)])
def test_unary(name, gen):
    a = gen(4, 3)
    check_grads(lambda x: getattr(x, name)(), a)
    if hasattr(shardopt, name):
        check_grads(lambda x: getattr(shardopt, name)(x), a)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    a = rng.uniform(-4, 4, size=(5, 7))
    a[0, 0] = 0.0
    check_grads(lambda x: shardopt.nn.functional.gelu(x, approximate=approximate), a)


def test_relu_gradient_is_zero_for_negative_inputs():
    x = T(np.array([-2.0, -0.5, 0.5, 3.0]), True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(N(x.grad), [0, 0, 1, 1])


# ------------------------------------------------------------------ reductions


@pytest.mark.parametrize("kw", [{}, {"dim": 0}, {"dim": -1}, {"dim": 1, "keepdim": True},
                                {"dim": (0, 2)}, {"dim": [-1, 0], "keepdim": True}])
def test_sum_mean(kw):
    a = r(3, 4, 2)
    check_grads(lambda x: x.sum(**kw), a)
    check_grads(lambda x: x.mean(**kw), a)
    check_grads(lambda x: shardopt.sum(x, **kw), a)
    check_grads(lambda x: shardopt.mean(x, **kw), a)


def test_sum_positional_and_0d():
    check_grads(lambda x: x.sum(1, True), r(3, 4))
    check_grads(lambda x: x.sum(), r())
    check_grads(lambda x: x.mean(), r())


def test_sum_of_empty():
    x = T(np.zeros((0, 3)), True)
    x.sum().backward()
    assert N(x.grad).shape == (0, 3)


# ------------------------------------------------------------------ matmul / linear


@pytest.mark.parametrize("sa,sb", [((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 5)),
                                   ((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (2, 4, 5)),
                                   ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
                                   ((3, 4), (2, 4, 5))])
def test_matmul(sa, sb):
    a, b = r(*sa), r(*sb)
    check_grads(lambda x, y: x @ y, a, b)
    check_grads(lambda x, y: shardopt.matmul(x, y), a, b, wrt=[1])


def test_mm_bmm_transposed_operands():
    check_grads(lambda x, y: x.mm(y.t()), r(3, 4), r(5, 4))
    check_grads(lambda x, y: x.transpose(1, 2).bmm(y), r(2, 4, 3), r(2, 4, 5))


@pytest.mark.parametrize("xs", [(7,), (3, 7), (2, 3, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(xs, bias):
    F = shardopt.nn.functional
    if bias:
        check_grads(lambda x, w, b: F.linear(x, w, b), r(*xs), r(5, 7), r(5))
    else:
        check_grads(lambda x, w: F.linear(x, w), r(*xs), r(5, 7))


@pytest.mark.parametrize("in_f,out_f", [(0, 3), (4, 0)])
def test_linear_zero_features(in_f, out_f):
    # a rank holding an empty shard of a sharded weight runs exactly this
    F = shardopt.nn.functional
    x = shardopt.tensor(r(2, 5, in_f), requires_grad=True)
    w = shardopt.tensor(r(out_f, in_f), requires_grad=True)
    b = shardopt.tensor(r(out_f), requires_grad=True)
    F.linear(x, w, b).sum().backward()
    assert x.grad.shape == (2, 5, in_f) and w.grad.shape == (out_f, in_f)
    assert b.grad.shape == (out_f,)
    assert float(b.grad.sum()) == 10.0 * out_f
    if out_f == 0:
        assert float(x.grad.abs().sum()) == 0.0


# ------------------------------------------------------------------ views and indexing


@pytest.mark.parametrize("f", [
    lambda x: x.reshape(6, 4), lambda x: x.view(4, 6), lambda x: x.view(-1),
    lambda x: x.flatten(), lambda x: x.flatten(1), lambda x: x.unsqueeze(1),
    lambda x: x.unsqueeze(-1), lambda x: x.reshape(2, 1, 3, 4).squeeze(1),
    lambda x: x.reshape(2, 1, 3, 4).squeeze(), lambda x: x.transpose(0, 2),
    lambda x: x.permute(2, 0, 1), lambda x: x.permute((1, 2, 0)), lambda x: x[0].t(),
    lambda x: x.narrow(1, 1, 2), lambda x: x.select(2, 3), lambda x: x[1],
    lambda x: x[:, 1:], lambda x: x[..., ::2], lambda x: x[None, 1, :, -1],
    lambda x: x[0, 2, 1], lambda x: x.clone(), lambda x: x.transpose(0, 1).contiguous(),
    lambda x: x.transpose(0, 1).reshape(-1),
], ids=lambda f: str(id(f))[-4:])
def test_views(f):
    check_grads(f, r(2, 3, 4))


def test_expand_reduces_broadcast_dims():
    check_grads(lambda x: x.expand(3, 4), r(1, 4))
    check_grads(lambda x: x.expand(2, 3, 4), r(3, 1))
    check_grads(lambda x: x.expand(-1, 5), r(3, 1))
    check_grads(lambda x: shardopt.cat([x.expand(2, 4), x.expand(1, 4)]), r(4))


def test_view_grad_flows_twice_through_shared_input():
    check_grads(lambda x: x[0] * x[1] + x.t()[0, :2].sum(), r(2, 3))


def test_to_dtype_gradient_converted_back():
    x = T(r(3, 4), True)
    y = x.to(shardopt.float32)
    assert y.grad_fn is not None and y.dtype == shardopt.float32
    (y * 2).sum().backward()
    assert x.grad.dtype == shardopt.float64
    np.testing.assert_allclose(N(x.grad), np.full((3, 4), 2.0))
    x = T(r(2, 2), True)
    (x.float().double() * 3).sum().backward()
    np.testing.assert_array_equal(N(x.grad), np.full((2, 2), 3.0))


def test_mixed_dtype_binary_gradient_has_input_dtype():
    x = T(r(3), True)
    y = T(r(3).astype(np.float32), True)
    (x * y).sum().backward()
    assert x.grad.dtype == shardopt.float64 and y.grad.dtype == shardopt.float32
    np.testing.assert_allclose(N(y.grad), N(x).astype(np.float32), rtol=1e-6)


# ------------------------------------------------------------------ cat / stack


def test_cat():
    check_grads(lambda a, b, c: shardopt.cat([a, b, c], dim=1), r(2, 3), r(2, 1), r(2, 4))
    check_grads(lambda a, b: shardopt.cat((a, b)), r(2, 3), r(4, 3))
    check_grads(lambda a, b: shardopt.cat([a, b], -1), r(2, 3), r(2, 2), wrt=[1])


def test_stack():
    if not hasattr(shardopt, "stack"):
        pytest.skip("no stack op")
    check_grads(lambda a, b: shardopt.stack([a, b], dim=1), r(2, 3), r(2, 3))


# ------------------------------------------------------------------ composite


def test_composite_expression():
    def f(x, w, b):
        h = (x @ w + b).relu()
        return (h * h).mean(dim=0) - h.sum(1, keepdim=True).exp().mean()
    check_grads(f, r(4, 3), r(3, 5), r(5), rtol=1e-5)



# ------------------------------------------------------------------ in-place forms (rebased)


def _inplace(name, *args):
    def f(x):
        y = x * 1.0  # non-leaf
        out = getattr(y, name)(*args)
        assert out is y
        return y
    return f


@pytest.mark.parametrize("name,args,gen", [
    ("relu_", (), away_from_zero), ("neg_", (), r), ("exp_", (), r), ("sqrt_", (), pos),
    ("tanh_", (), r), ("sigmoid_", (), r), ("abs_", (), away_from_zero), ("log_", (), pos),
    ("square_", (), r), ("pow_", (3.0,), pos), ("mul_", (2.5,), r), ("div_", (4.0,), r),
    ("add_", (1.5,), r), ("sub_", (0.5,), r)])
def test_inplace_unary_forms(name, args, gen):
    check_grads(_inplace(name, *args), gen(3, 4))


def test_inplace_binary_forms_with_tensor_operands():
    def f(x, w):
        y = x * 1.0
        y.mul_(w)
        y.div_(w + 3.0)
        y += w
        y -= x
        y *= w
        y /= 2.0
        return y
    check_grads(f, r(3, 4), r(4))
