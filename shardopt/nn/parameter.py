"""nn.Parameter: a Tensor subclass that Module registers as a parameter.

``Parameter(data)`` is an alias of ``data``'s storage whose class is Parameter, a leaf with
``requires_grad`` (default True), made by ``_C._make_subclass`` as torch's
``Tensor._make_subclass`` does.

Extension point for tensor-like objects that are not ``shardopt.Tensor`` (the sharding issue's
ShardedTensor): if ``type(data)`` defines ``_as_parameter(self, requires_grad)``,
``Parameter(data)`` returns ``data._as_parameter(requires_grad)`` -- by convention ``data``
itself (or a detached copy of it) with ``_is_param = True`` and the requires_grad applied to
its local tensors. Such objects then pass ``isinstance(obj, Parameter)`` (like torch's
``_ParameterMeta``), so ``Module.__setattr__``/``register_parameter`` register them and
``named_parameters()``/``parameters()`` yield them.
"""
from .. import _C
from .._tensor import Tensor
from .. import overrides as _overrides

__all__ = ["Parameter", "is_parameter_like"]


def is_parameter_like(obj):
    """True for Parameters and for tensor-like objects marked as parameters (``_is_param``)."""
    return isinstance(obj, Parameter)


class _ParameterMeta(type):
    def __instancecheck__(cls, instance):
        if cls is Parameter and getattr(instance, "_is_param", False) is True:
            return True
        return super().__instancecheck__(instance)


class Parameter(Tensor, metaclass=_ParameterMeta):
    """A Tensor that is a module parameter (see the module docstring)."""

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = _C.empty((0,))
        if not isinstance(data, _C.TensorBase):
            as_param = getattr(type(data), "_as_parameter", None)
            if as_param is None:
                raise TypeError(f"Parameter(): data must be a Tensor (or define _as_parameter), "
                                f"got {type(data).__name__}")
            return as_param(data, requires_grad)
        return _C._make_subclass(cls, data, requires_grad)

    def __init__(self, data=None, requires_grad=True):
        pass  # all the work is in __new__ (TensorBase takes no constructor arguments)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (self.detach(), self.requires_grad))


def _rebuild_parameter(data, requires_grad):
    return Parameter(data, requires_grad)


_overrides.register_plain_type(Parameter)  # exact Parameters never dispatch: skip their scan
