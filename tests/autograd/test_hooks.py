"""Tensor.register_post_accumulate_grad_hook and engine.queue_callback: when they run, what
they see, removal, and torch's errors."""
import numpy as np
import pytest

import shardopt as so
from shardopt.autograd import engine


def test_post_accumulate_hook_sees_the_summed_grad_once_per_pass():
    w = so.nn.Parameter(so.from_numpy(np.array([1.0, 2.0, 3.0], dtype=np.float32)))
    seen = []
    h = w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.numpy().copy()))
    # two paths into w: the hook fires once, after both contributions are summed
    (w * 2 + w * 3).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [5.0, 5.0, 5.0])
    (w * 1).sum().backward()  # accumulates into the existing grad
    np.testing.assert_array_equal(seen[1], [6.0, 6.0, 6.0])
    h.remove()
    (w * 1).sum().backward()
    assert len(seen) == 2


def test_post_accumulate_hook_errors():
    x = so.rand(3)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        x.register_post_accumulate_grad_hook(lambda p: None)
    w = so.rand(3).requires_grad_()
    y = w * 2
    with pytest.raises(RuntimeError, match="non-leaf"):
        y.register_post_accumulate_grad_hook(lambda p: None)
    w.register_post_accumulate_grad_hook(lambda p: 1)
    with pytest.raises(RuntimeError, match="should return None"):
        (w * 2).sum().backward()


def test_queue_callback_runs_after_every_node():
    a = so.rand(4).requires_grad_()
    b = so.rand(4).requires_grad_()
    order = []
    queued = [False]

    def finish():
        order.append(("cb", a.grad is not None and b.grad is not None))
        queued[0] = False

    def hook(p):
        order.append("hook")
        if not queued[0]:
            queued[0] = True
            engine.queue_callback(finish)

    a.register_post_accumulate_grad_hook(hook)
    b.register_post_accumulate_grad_hook(hook)
    (a * b).sum().backward()
    assert order == ["hook", "hook", ("cb", True)]
    (a * b).sum().backward()  # a fresh list per pass: the callback ran once per pass
    assert order[3:] == ["hook", "hook", ("cb", True)]


def test_queue_callback_outside_backward_raises():
    with pytest.raises(RuntimeError, match="only be installed during backward pass"):
        engine.queue_callback(lambda: None)
