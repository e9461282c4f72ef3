"""Top-level ``shardopt.narrow`` and ``shardopt.clone`` (torch.narrow / torch.clone): the same
results as the Tensor methods, views vs copies, autograd, argument errors."""
import numpy as np
import pytest

import shardopt as so


def test_narrow_is_a_view_with_torch_indexing():
    rng = np.random.default_rng()
    a = rng.standard_normal((4, 6))
    x = so.from_numpy(a.copy())
    v = so.narrow(x, 1, 2, 3)
    np.testing.assert_array_equal(v.numpy(), a[:, 2:5])
    np.testing.assert_array_equal(so.narrow(x, -1, -3, 2).numpy(), a[:, 3:5])
    v.fill_(7.0)  # a view: writes reach x
    assert (x.numpy()[:, 2:5] == 7.0).all()
    with pytest.raises((RuntimeError, IndexError)):
        so.narrow(x, 0, 3, 2)  # past the end
    with pytest.raises(TypeError, match="narrow.*'input'.*must be Tensor"):
        so.narrow(a, 0, 0, 1)


def test_clone_copies_and_keeps_history():
    x = so.arange(6.0).reshape(2, 3).requires_grad_()
    c = so.clone(x)
    assert c.data_ptr() != x.data_ptr() and c.tolist() == x.tolist()
    assert type(c.grad_fn).__name__ == "CloneBackward0"
    so.narrow(c, 1, 0, 2).sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    assert so.clone(x, memory_format=so.preserve_format).shape == x.shape
    with pytest.raises(TypeError, match="clone.*'input'.*must be Tensor"):
        so.clone([1.0])


def test_narrow_gradient_matches_torch_where_available():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng().standard_normal((5, 4))
    x = so.from_numpy(a.copy()).requires_grad_()
    (so.narrow(x, 0, 1, 3) * 2.0).sum().backward()
    t = torch.from_numpy(a.copy()).requires_grad_()
    (torch.narrow(t, 0, 1, 3) * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
