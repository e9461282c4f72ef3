"""AccumulateGrad adopts ("steals") a fresh gradient buffer as a leaf's first .grad instead of
copying it, exactly when nothing else can see that buffer; otherwise it copies.  These tests
check both directions: the copy is skipped for fresh buffers, and no .grad ever aliases a
tensor, view, NumPy array or other .grad that user code can still reach."""
import numpy as np
import pytest

import shardopt as so
from shardopt.autograd import Function


def _returning(make_grad):
    """A custom Function: identity forward, backward returns make_grad(g)."""

    class F(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return make_grad(g)

    return F


def test_fresh_buffer_is_adopted_without_copy():
    seen = {}

    def fresh(g):
        out = g * 3
        seen["ptr"] = out.data_ptr()  # the address only: no reference kept
        return out

    x = so.randn(64, 32, requires_grad=True)
    _returning(fresh).apply(x).sum().backward()
    assert x.grad.data_ptr() == seen["ptr"]
    np.testing.assert_array_equal(x.grad.numpy(), np.full((64, 32), 3, np.float32))


def test_buffer_kept_elsewhere_is_copied():
    kept = []

    def keep(g):
        out = g * 2
        kept.append(out)
        return out

    x = so.randn(8, 4, requires_grad=True)
    _returning(keep).apply(x).sum().backward()
    assert x.grad.data_ptr() != kept[0].data_ptr()
    x.grad.add_(100.0)
    np.testing.assert_array_equal(kept[0].numpy(), np.full((8, 4), 2, np.float32))


def test_view_of_larger_buffer_is_copied():
    ptrs = {}

    def view(g):
        big = so.zeros(2 * g.numel())
        ptrs["big"] = big.data_ptr()
        return big[: g.numel()].view(g.shape)

    x = so.randn(5, 3, requires_grad=True)
    _returning(view).apply(x).sum().backward()
    # the storage is twice the gradient's size: adopting it would pin the whole buffer and
    # leave .grad a view; it is copied into a tensor of its own
    assert x.grad.data_ptr() != ptrs["big"]
    assert x.grad.is_contiguous() and x.grad.storage_offset() == 0
    assert x.grad._storage.nbytes() == 15 * 4


def test_sibling_view_is_copied():
    kept = []

    def alias(g):
        out = g * 1
        kept.append(out.view(-1))  # another tensor object over the same storage
        return out

    x = so.randn(6, 2, requires_grad=True)
    _returning(alias).apply(x).sum().backward()
    x.grad.zero_()
    np.testing.assert_array_equal(kept[0].numpy(), np.ones(12, np.float32))


def test_numpy_exported_buffer_is_copied():
    arrays = []

    def exported(g):
        out = g * 5
        arrays.append(out.numpy())  # a NumPy view over the gradient's storage
        return out

    x = so.randn(4, 4, requires_grad=True)
    _returning(exported).apply(x).sum().backward()
    x.grad.fill_(-1.0)
    np.testing.assert_array_equal(arrays[0], np.full((4, 4), 5, np.float32))


def test_numpy_owned_buffer_is_copied():
    arr = np.full((3, 3), 7, np.float32)

    def foreign(g):
        return so.from_numpy(arr)  # memory owned by `arr`, which the caller still writes

    x = so.randn(3, 3, requires_grad=True)
    _returning(foreign).apply(x).sum().backward()
    arr[:] = 0
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 3), 7, np.float32))


def test_user_gradient_on_leaf_root_is_copied():
    x = so.randn(5, requires_grad=True)
    g = so.ones(5)
    x.backward(g)
    x.grad.mul_(3.0)
    np.testing.assert_array_equal(g.numpy(), np.ones(5, np.float32))


def test_same_gradient_to_two_leaves_never_aliases():
    a = so.randn(7, requires_grad=True)
    b = so.randn(7, requires_grad=True)
    (a + b).backward(so.ones(7) * 2)  # add's backward hands the same tensor to both edges
    assert a.grad.data_ptr() != b.grad.data_ptr()
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), np.full(7, 2, np.float32))


def test_saved_tensor_alias_is_copied():
    # the gradient reaching w is also saved for a later backward through another graph
    w = so.randn(4, requires_grad=True)
    holder = {}

    def saved(g):
        out = g * 4
        holder["alias"] = out._alias()
        return out

    _returning(saved).apply(w).sum().backward()
    w.grad.zero_()
    np.testing.assert_array_equal(holder["alias"].numpy(), np.full(4, 4, np.float32))


def test_autograd_grad_result_is_not_adopted_by_other_leaf():
    x = so.randn(3, requires_grad=True)
    y = (x * 2).sum()
    (gx,) = so.autograd.grad(y, [x])
    assert x.grad is None
    np.testing.assert_array_equal(gx.numpy(), np.full(3, 2, np.float32))


def test_accumulation_after_adoption_and_results_unchanged():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((16, 8)).astype(np.float32)
    ws = rng.standard_normal((8, 4)).astype(np.float32)
    x = so.from_numpy(xs.copy()).requires_grad_()
    w = so.from_numpy(ws.copy()).requires_grad_()
    for _ in range(2):  # first backward adopts, second accumulates into the adopted buffer
        (so.nn.functional.gelu(x @ w) ** 2).sum().backward()
    # autograd.grad never touches .grad and never adopts: the reference
    x2 = so.from_numpy(xs.copy()).requires_grad_()
    w2 = so.from_numpy(ws.copy()).requires_grad_()
    gx, gw = so.autograd.grad((so.nn.functional.gelu(x2 @ w2) ** 2).sum(), [x2, w2])
    np.testing.assert_allclose(x.grad.numpy(), 2 * gx.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), 2 * gw.numpy(), rtol=1e-6, atol=1e-6)


def test_adopted_grad_survives_graph_release():
    x = so.randn(10, 10, requires_grad=True)
    (x * x).sum().backward()
    g = x.grad.numpy().copy()
    import gc

    gc.collect()
    np.testing.assert_array_equal(x.grad.numpy(), g)
    np.testing.assert_allclose(g, 2 * x.detach().numpy(), rtol=1e-6)


def test_torch_same_values():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 5)).astype(np.float32)
    b = rng.standard_normal((5, 3)).astype(np.float32)
    sa, sb = so.from_numpy(a.copy()).requires_grad_(), so.from_numpy(b.copy()).requires_grad_()
    ta, tb = torch.from_numpy(a.copy()).requires_grad_(), torch.from_numpy(b.copy()).requires_grad_()
    (sa @ sb).relu().sum().backward()
    (ta @ tb).relu().sum().backward()
    np.testing.assert_allclose(sa.grad.numpy(), ta.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sb.grad.numpy(), tb.grad.numpy(), rtol=1e-6, atol=1e-6)
