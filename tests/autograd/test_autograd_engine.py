"""Engine and Tensor-API behaviour: accumulation, retain_graph, grad modes, detach, retain_grad,
torch's error messages, in-place/version checks, custom Functions, autograd.grad."""
import copy
import gc
import threading

import numpy as np
import pytest

import shardopt
from shardopt.autograd import Function
from _ag_helpers import N, T

rng = np.random.default_rng(7)


def r(*shape):
    return rng.uniform(-1, 1, size=shape)


# ------------------------------------------------------------------ leaves and accumulation


def test_leaf_flags_and_grad_fn():
    x = T(r(3), True)
    c = T(r(3))
    assert x.is_leaf and c.is_leaf and x.grad_fn is None
    y = x * c
    assert not y.is_leaf and y.requires_grad and y.grad_fn.name() == "MulBackward0"
    z = c * 2
    assert z.is_leaf and not z.requires_grad and z.grad_fn is None
    nf = y.grad_fn.next_functions
    assert nf[0][0].name() == "AccumulateGrad" and nf[0][0].variable is x
    assert nf[1] == (None, 0)


def test_grad_accumulates_across_backward_calls():
    x = T(r(4), True)
    (x * 3).sum().backward()
    g1 = x.grad
    np.testing.assert_array_equal(N(g1), np.full(4, 3.0))
    (x * x).sum().backward()
    np.testing.assert_allclose(N(x.grad), 3.0 + 2 * N(x))
    assert x.grad is g1  # accumulated in place, like torch


def test_first_grad_does_not_alias_the_incoming_gradient():
    x = T(r(3), True)
    g = T(np.ones(3))
    x.backward(g)
    assert x.grad.data_ptr() != g.data_ptr()
    g.fill_(5.0)
    np.testing.assert_array_equal(N(x.grad), np.ones(3))


def test_expanded_gradient_stored_contiguous():
    x = T(r(3, 4), True)
    x.sum().backward()
    assert x.grad.is_contiguous() and x.grad.stride() == (4, 1)


def test_diamond_graph_sums_paths():
    x = T(r(3), True)
    a = x * 2
    b = x * 3
    (a + b + a * b).sum().backward()
    np.testing.assert_allclose(N(x.grad), 5 + 12 * N(x))


def test_long_chain_is_iterative():
    x = T(np.ones(1), True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_array_equal(N(x.grad), [1.0])


def test_backward_with_gradient_argument():
    x = T(r(2, 3), True)
    y = x * 2
    g = r(2, 3)
    y.backward(T(g))
    np.testing.assert_allclose(N(x.grad), 2 * g)


def test_backward_gradient_converted_to_output_dtype():
    x = T(r(3), True)
    (x * 1).backward(T(np.ones(3, dtype=np.float32)))
    assert x.grad.dtype == shardopt.float64


def test_leaf_backward_directly():
    x = T(np.array(2.0), True)
    x.backward()
    assert N(x.grad) == 1.0


# ------------------------------------------------------------------ errors


def test_backward_twice_without_retain_graph():
    x = T(r(3), True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = T(r(3), True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(N(x.grad), 4 * N(x))


def test_backward_non_scalar_needs_gradient():
    x = T(r(3), True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar "
                                           "outputs"):
        (x * 2).backward()


def test_backward_on_tensor_without_grad():
    x = T(r(3))
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and "
                                           "does not have a grad_fn"):
        x.sum().backward()


def test_gradient_shape_mismatch():
    x = T(r(3), True)
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of "
                                           r"shardopt.Size\(\[2\]\) and output\[0\] has a "
                                           r"shape of shardopt.Size\(\[3\]\)"):
        (x * 2).backward(T(np.ones(2)))


def test_inplace_modification_of_saved_tensor():
    a = T(r(3, 4), True)
    b = a * 2  # version 0, output 0 of MulBackward0
    c = b * b  # saves b
    with shardopt.no_grad():
        b.add_(1)
    with pytest.raises(RuntimeError) as ei:
        c.sum().backward()
    msg = str(ei.value)
    assert ("one of the variables needed for gradient computation has been modified by an "
            "inplace operation: [shardopt.DoubleTensor [3, 4]], which is output 0 of "
            "Mul, is at version 1; expected version 0 instead.") in msg


def test_inplace_modification_of_saved_leaf_via_view():
    w = T(r(3), True)
    x = T(r(3))
    y = (w * x).sum()  # saves x for w's gradient
    x[0] = 5.0        # in place through __setitem__ bumps the shared version
    with pytest.raises(RuntimeError, match=r"\[shardopt.DoubleTensor \[3\]\] is at version 1; "
                                           r"expected version 0 instead"):
        y.backward()


def test_inplace_on_leaf_requiring_grad():
    x = T(r(3), True)
    for op in (lambda: x.add_(1), lambda: x.mul_(2), lambda: x.fill_(0), lambda: x.zero_(),
               lambda: x.copy_(T(r(3)))):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used "
                                               "in an in-place operation."):
            op()
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        x[0] = 1.0
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        x[1:].add_(1)
    with shardopt.no_grad():  # allowed outside recording (what optimizers do)
        x.add_(1)
        x[0] = 2.0
    assert x._version == 2


def test_requires_grad_only_on_floats_and_leaves():
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require "
                                           "gradients"):
        T(np.arange(3)).requires_grad_()
    y = T(r(2), True) * 2
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf "
                                           "variables"):
        y.requires_grad_(False)
    y.requires_grad_(True)  # no-op on a non-leaf


def test_retain_grad_requires_grad():
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has "
                                           "requires_grad=False"):
        T(r(2)).retain_grad()


def test_deepcopy():
    x = T(r(3), True)
    y = copy.deepcopy(x)
    assert y.is_leaf and y.requires_grad and y.data_ptr() != x.data_ptr()
    np.testing.assert_array_equal(N(x), N(y))
    with pytest.raises(RuntimeError, match="Only Tensors created explicitly by the user"):
        copy.deepcopy(x * 2)


# ------------------------------------------------------------------ grad modes


def test_no_grad_and_enable_grad():
    x = T(r(3), True)
    with shardopt.no_grad():
        assert not shardopt.is_grad_enabled()
        y = x * 2
        with shardopt.enable_grad():
            z = x * 2
    assert shardopt.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None


def test_no_grad_as_decorator_and_set_grad_enabled():
    x = T(r(3), True)

    @shardopt.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    with shardopt.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert shardopt.is_grad_enabled()
    shardopt.set_grad_enabled(False)
    try:
        assert not (x + 1).requires_grad
    finally:
        shardopt.set_grad_enabled(True)
    assert (x + 1).requires_grad


def test_grad_mode_is_thread_local():
    seen = []
    with shardopt.no_grad():
        t = threading.Thread(target=lambda: seen.append(shardopt.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_every_wrapped_op_skips_recording_under_no_grad():
    x = T(r(2, 3), True)
    with shardopt.no_grad():
        outs = [x + 1, x - x, x * x, x / 2, -x, x ** 2, x @ x.t(), x.sum(), x.mean(1), x.exp(),
                x.reshape(3, 2), x[0], x.t(), x.transpose(0, 1), x.unsqueeze(0), x.expand(2, 2, 3),
                x.narrow(1, 0, 2), shardopt.cat([x, x]), x.clone(), x.to(shardopt.float32),
                shardopt.nn.functional.linear(x, x), x.relu()]
    for o in outs:
        assert not o.requires_grad and o.grad_fn is None


# ------------------------------------------------------------------ detach / retain_grad


def test_detach_shares_storage():
    x = T(r(3), True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert d.data_ptr() == x.data_ptr()
    d[0] = 42.0
    assert N(x)[0] == 42.0
    y = x * 2
    assert y.detach().grad_fn is None


def test_detach_inplace():
    x = T(r(3), True)
    y = x * 2
    assert y.detach_() is y
    assert y.grad_fn is None and not y.requires_grad
    v = (x * 2)[1:]
    with pytest.raises(RuntimeError, match="Can't detach views in-place"):
        v.detach_()


def test_retain_grad_on_intermediate():
    x = T(r(3), True)
    y = x * 2
    y.retain_grad()
    assert y.retains_grad and not x.retains_grad
    z = (y * y).sum()
    z.backward(retain_graph=True)
    np.testing.assert_allclose(N(y.grad), 2 * N(y))
    z.backward()
    np.testing.assert_allclose(N(y.grad), 4 * N(y))
    np.testing.assert_allclose(N(x.grad), 2 * 4 * N(y))


def test_graph_is_freed_with_its_outputs():
    x = T(r(3), True)
    y = (x * x).sum()
    import weakref
    ref = weakref.ref(y.grad_fn)
    del y
    gc.collect()
    assert ref() is None


# ------------------------------------------------------------------ in-place ops in graphs


def test_inplace_add_and_mul_on_non_leaf_are_differentiable():
    a, b = r(3), r(3)
    x = T(a, True)
    w = T(b, True)
    y = x * 2
    y.add_(w)          # y = 2x + w
    y.mul_(w)          # y = (2x + w) * w
    y.sum().backward()
    np.testing.assert_allclose(N(x.grad), 2 * b)
    np.testing.assert_allclose(N(w.grad), 2 * a + 2 * b)


def test_inplace_ops_on_tensor_without_grad_pull_it_into_the_graph():
    w = T(r(3), True)
    buf = T(np.zeros(3))
    buf.copy_(w)
    assert buf.requires_grad and buf.grad_fn is not None
    buf += 1.0
    (buf * buf).sum().backward()
    np.testing.assert_allclose(N(w.grad), 2 * (N(w) + 1))


def test_setitem_with_grad():
    w = T(r(2), True)
    x = T(r(4), True)
    y = x * 1.0
    y[1:3] = w * 3
    (y * T(np.array([1.0, 2.0, 3.0, 4.0]))).sum().backward()
    np.testing.assert_allclose(N(x.grad), [1.0, 0.0, 0.0, 4.0])
    np.testing.assert_allclose(N(w.grad), [6.0, 9.0])


def test_fill_on_non_leaf_blocks_gradient():
    x = T(r(3), True)
    y = x * 2
    y.fill_(1.0)
    (y * x).sum().backward()
    np.testing.assert_allclose(N(x.grad), np.ones(3))


def test_inplace_through_view_of_non_leaf_is_refused():
    x = T(r(4), True)
    y = x * 2
    with pytest.raises(RuntimeError, match="view of a tensor that requires grad"):
        y[:2].add_(1)


# ------------------------------------------------------------------ autograd.grad / backward


def test_autograd_grad_does_not_touch_dot_grad():
    x = T(r(3), True)
    w = T(r(3), True)
    y = (x * w).sum()
    gx, = shardopt.autograd.grad(y, x)
    np.testing.assert_allclose(N(gx), N(w))
    assert x.grad is None and w.grad is None


def test_autograd_grad_non_leaf_and_unused():
    x = T(r(3), True)
    h = x * 2
    y = (h * h).sum()
    u = T(r(1), True)
    gh, gu = shardopt.autograd.grad(y, [h, u], allow_unused=True)
    np.testing.assert_allclose(N(gh), 2 * N(h))
    assert gu is None
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        shardopt.autograd.grad((x * 2).sum(), [x, u])


def test_autograd_backward_multiple_roots_and_inputs():
    x = T(r(3), True)
    w = T(r(3), True)
    a = (x * w).sum()
    b = (x * 3).sum()
    shardopt.autograd.backward([a, b])
    np.testing.assert_allclose(N(x.grad), N(w) + 3)
    x.grad = None
    w.grad = None
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None
    np.testing.assert_allclose(N(w.grad), N(x))


# ------------------------------------------------------------------ custom Function


class Cube(Function):
    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(x)
        ctx.k = k
        return x * x * x * k

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * 3 * x * x * ctx.k, None


def test_custom_function():
    x = T(r(4), True)
    y = Cube.apply(x, 2.0)
    assert y.grad_fn.name() == "CubeBackward"
    assert y.grad_fn.needs_input_grad == (True, False)
    y.sum().backward()
    np.testing.assert_allclose(N(x.grad), 6 * N(x) ** 2)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()


def test_custom_function_without_grad_and_wrong_grad_count():
    x = T(r(2))
    y = Cube.apply(x, 1.0)
    assert y.grad_fn is None

    class Bad(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, g):
            return g

    a, b = T(r(2), True), T(r(2), True)
    with pytest.raises(RuntimeError, match="returned an incorrect number of gradients "
                                           r"\(expected 2, got 1\)"):
        Bad.apply(a, b).sum().backward()


def test_custom_function_saved_tensor_version_check():
    x = T(r(3), True)
    h = x * 1.0
    y = Cube.apply(h, 1.0)
    with shardopt.no_grad():
        h.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_wrappers_expose_the_raw_op():
    from shardopt._ops import elementwise, reduce
    assert shardopt.add.__wrapped__ is elementwise.add
    assert shardopt.sum.__wrapped__ is reduce.sum
    assert shardopt.Tensor.__mul__.__wrapped__ is elementwise.TENSOR_METHODS["__mul__"]
