"""Tensor.register_hook: hooks see each gradient computed for a tensor and may replace it;
on leaves they run before accumulation, on non-leaves before retain_grad stores .grad."""
import numpy as np
import pytest

import shardopt as so


def test_leaf_hook_sees_and_replaces_the_gradient():
    x = so.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.clone()) or g * 2)
    (x * 3).sum().backward()
    np.testing.assert_array_equal(seen[0].numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    (x * 3).sum().backward()  # accumulates the hooked gradient again
    np.testing.assert_array_equal(x.grad.numpy(), [12.0, 12.0])
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    assert len(seen) == 2


def test_hook_registered_after_the_graph_was_built():
    x = so.tensor([1.0], requires_grad=True)
    y = x * 5
    x.register_hook(lambda g: g * 10)
    y.backward()
    assert x.grad.item() == 50.0


def test_non_leaf_hooks_run_in_order_before_retain_grad():
    a = so.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    order = []
    b.register_hook(lambda g: order.append("first") or g + 1)
    b.register_hook(lambda g: order.append("second") or None)  # None keeps the gradient
    b.retain_grad()
    (b * b).sum().backward()  # d/db = 2b = [4, 8] -> hooked [5, 9]
    assert order == ["first", "second"]
    np.testing.assert_array_equal(b.grad.numpy(), [5.0, 9.0])
    np.testing.assert_array_equal(a.grad.numpy(), [10.0, 18.0])


def test_hooks_apply_to_autograd_grad_and_multi_output_paths():
    d = so.tensor([1.0, 1.0], requires_grad=True)
    e = d * d
    e.register_hook(lambda g: g * 0)
    assert so.autograd.grad(e.sum(), d)[0].numpy().tolist() == [0.0, 0.0]
    x = so.tensor([2.0], requires_grad=True)
    y = x * 3
    calls = []
    y.register_hook(lambda g: calls.append(g.item()))
    (y + y * y).sum().backward()  # two paths into y: the hook sees their sum once
    assert calls == [1.0 + 2 * 6.0]


def test_hook_errors():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        so.tensor([1.0]).register_hook(print)
    x = so.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="must be callable"):
        x.register_hook(3)
    x.register_hook(lambda g: so.ones(3))
    with pytest.raises(RuntimeError, match="has changed the size of value"):
        (x * 1).sum().backward()
    y = so.tensor([1.0], requires_grad=True)
    y.register_hook(lambda g: "no")
    with pytest.raises(TypeError, match="must return None or a Tensor"):
        (y * 1).sum().backward()
