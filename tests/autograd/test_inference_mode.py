"""shardopt.inference_mode: no recording inside, as a context manager and a decorator."""
import pytest

import shardopt as so


def test_inference_mode():
    x = so.ones(2, requires_grad=True)
    with so.inference_mode():
        assert not (x * 2).requires_grad and so.is_inference_mode_enabled()
    assert (x * 2).requires_grad and not so.is_inference_mode_enabled()

    @so.inference_mode
    def f():
        return (x * 2).requires_grad

    @so.inference_mode(False)
    def g():
        return (x * 2).requires_grad

    assert f() is False and g() is True
    with pytest.raises(TypeError, match="must be bool"):
        so.inference_mode("yes")
