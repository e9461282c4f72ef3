"""shardopt.overrides: the __torch_function__ protocol as shardopt's public functions publish
it (single process; the ShardedTensor side is covered in tests/sharded_tensor)."""
import pytest

import shardopt as torch
from shardopt import overrides


class _Fake:
    """A tensor-like that records what it was asked to handle."""

    calls = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.calls.append((func, types, args, kwargs))
        return ("handled", getattr(func, "__name__", None))


class _Declines:
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return NotImplemented


def test_public_functions_dispatch_tensor_likes_to_their_class():
    _Fake.calls.clear()
    fake = _Fake()
    assert torch.sqrt(fake) == ("handled", "sqrt")
    assert torch.add(torch.ones(2), fake, alpha=2) == ("handled", "add")
    func, types, args, kwargs = _Fake.calls[-1]
    assert func is torch.add and types == (_Fake,)
    assert args[1] is fake and kwargs == {"alpha": 2}
    # found inside a list argument too (cat's tensors)
    assert torch.cat([torch.ones(2), fake]) == ("handled", "cat")


def test_plain_calls_and_genuine_type_errors_are_untouched():
    assert torch.sqrt(torch.ones(3)).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(TypeError):
        torch.sqrt("not a tensor")  # no __torch_function__ anywhere: the op's own error


def test_a_class_that_declines_gets_a_clear_type_error():
    with pytest.raises(TypeError, match="no implementation found for 'sqrt'"):
        torch.sqrt(_Declines())


def test_wrapper_keeps_the_original_for_the_op_registry():
    assert getattr(torch.sqrt, "_shardopt_original", None) is not None
    assert overrides.dispatchable(torch.sqrt) is torch.sqrt  # never wrapped twice
    assert overrides.has_torch_function((1, [_Fake()]))
    assert not overrides.has_torch_function((torch.ones(1), 2.0), {"x": torch.ones(1)})
    # functions that never take a tensor-like are published as they are
    assert getattr(torch.manual_seed, "_shardopt_original", None) is None


def test_nn_functional_dispatches_before_running():
    import shardopt.nn.functional as F
    _Fake.calls.clear()
    fake = _Fake()
    # relu would accept the fake by duck typing (input.relu()); torch's order asks the
    # tensor-like's class first
    assert F.relu(fake) == ("handled", "relu")
    assert F.linear(torch.ones(2, 3), fake, bias=None) == ("handled", "linear")
    func, types, args, kwargs = _Fake.calls[-1]
    assert func is F.linear and overrides.dispatchable(func) is func
    assert args[1] is fake and kwargs == {"bias": None}
    assert F.gelu(torch.zeros(2)).tolist() == [0.0, 0.0]  # plain calls unchanged
    with pytest.raises(TypeError, match="linear"):
        F.linear("x", torch.ones(2, 2))  # a genuine type error stays one


def test_nn_init_dispatches_tensor_likes():
    import shardopt.nn.init as init
    _Fake.calls.clear()
    assert init.normal_(_Fake(), mean=1.0) == ("handled", "normal_")
    func, _, args, kwargs = _Fake.calls[-1]
    assert func is init.normal_ and args == () and kwargs["mean"] == 1.0


def test_args_first_wrapper_scans_nested_arguments():
    def first(xs):
        return "ran"
    wrapped = overrides.dispatchable(first, args_first=True)
    assert wrapped([1, 2]) == "ran"
    assert wrapped([1, _Fake()]) == ("handled", "first")
    assert wrapped(xs=(_Fake(),)) == ("handled", "first")
    assert wrapped._shardopt_original is first


def test_plain_type_fast_path_still_dispatches_later_tensor_likes():
    import shardopt.nn.functional as F

    x = torch.ones(2, 3)
    w = torch.nn.Parameter(torch.ones(4, 3))
    # exact Tensor / Parameter arguments are registered as plain: the call runs normally
    assert torch.Tensor in overrides._PLAIN_TYPES and torch.nn.Parameter in overrides._PLAIN_TYPES
    assert F.linear(x, w).shape == (2, 4)
    # a tensor-like after plain tensors, positional or keyword, still dispatches
    _Fake.calls.clear()
    assert F.linear(x, w, _Fake()) == ("handled", "linear")
    assert F.linear(x, w, bias=_Fake()) == ("handled", "linear")


def test_register_plain_type_refuses_a_class_with_the_protocol():
    with pytest.raises(TypeError, match="__torch_function__"):
        overrides.register_plain_type(_Fake)
    assert _Fake not in overrides._PLAIN_TYPES
