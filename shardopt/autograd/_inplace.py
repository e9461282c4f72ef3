"""In-place operations under autograd.

Outside recording (grad mode off, or nothing involved requires grad) every in-place method is
the raw C op: it bumps the storage version, which is what makes a later backward through a
node that saved the old value raise torch's "modified by an inplace operation" error.

While recording:
- a leaf that requires grad cannot be modified (torch's error), nor a view of one;
- ``add_ sub_ mul_ div_ copy_ fill_ zero_ __setitem__`` (and ``__iadd__``-style operators),
  and the unary ``relu_ neg_ exp_ sqrt_ tanh_ sigmoid_ abs_ log_ square_ pow_`` are
  differentiable: the out-of-place op is recorded, its result written into ``self``, and
  ``self``'s history moved to the new node ("rebase", as torch does). Ops whose gradient needs
  the old value (``mul_``, ``div_``, ``pow_``...) record against a snapshot of it, so the new
  node does not save the data being overwritten;
- other in-place ops raise a RuntimeError naming the op, rather than computing a wrong grad;
- in-place writes through a recorded view of a non-leaf are refused (torch's CopySlices is not
  implemented), so the base's gradient cannot silently go wrong.
"""

from __future__ import annotations

from . import _common as c
from ._views import AliasBackward0, normalize_index
from .graph import edge, output_nr, set_history

_TB = c._TensorBase
_state = c._state

_LEAF_MSG = "a leaf Variable that requires grad is being used in an in-place operation."
_VIEW_LEAF_MSG = ("a view of a leaf Variable that requires grad is being used in an in-place "
                  "operation.")


def _raw_clone_with_history(t):
    """A copy of ``t``'s current value that stands for ``t`` in the graph."""
    snap = c.RAW_M["clone"](t)
    if t.requires_grad:
        if t.grad_fn is not None:
            snap.grad_fn = t.grad_fn
            nr = output_nr(t)
            if nr:
                snap._output_nr = nr
        snap.requires_grad = True
    return snap


def _copy_outplace(self, src, *args, **kw):
    if not isinstance(src, _TB):
        return None
    out = src
    if out.dtype != self.dtype or out.device != self.device:
        out = out._convert(self.dtype, self.device)
    if out._shape != self._shape:
        out = out.expand(self._shape)
    if out is src and src.requires_grad:
        # same geometry: a history-carrying alias (no data copy) so the graph reaches src
        out = c.record(AliasBackward0, src._alias(), (src,))
    return out


# name -> (out-of-place recorder(self_or_snapshot, *args, **kw), needs a snapshot of self)
_REBASE = {
    "add_": (lambda s, *a, **k: s.add(*a, **k), False),
    "__iadd__": (lambda s, o: s + o, False),
    "sub_": (lambda s, *a, **k: s.sub(*a, **k), False),
    "__isub__": (lambda s, o: s - o, False),
    "mul_": (lambda s, *a, **k: s.mul(*a, **k), True),
    "__imul__": (lambda s, o: s * o, True),
    "div_": (lambda s, *a, **k: s.div(*a, **k), True),
    "__itruediv__": (lambda s, o: s / o, True),
    "copy_": (_copy_outplace, False),
    # unary in-place forms: the out-of-place node saves its own result or a snapshot input
    "relu_": (lambda s: s.relu(), False),
    "neg_": (lambda s: -s, False),
    "exp_": (lambda s: s.exp(), False),
    "sqrt_": (lambda s: s.sqrt(), False),
    "tanh_": (lambda s: s.tanh(), False),
    "sigmoid_": (lambda s: s.sigmoid(), False),
    "abs_": (lambda s: s.abs(), True),
    "log_": (lambda s: s.log(), True),
    "square_": (lambda s: s.square(), True),
    "pow_": (lambda s, e: s.pow(e), True),
    "__ipow__": (lambda s, e: s ** e, True),
    # indexing / masking forms (shardopt.autograd._indexing has their out-of-place nodes)
    "masked_fill_": (lambda s, *a, **k: s.masked_fill(*a, **k), False),
    "scatter_": (lambda s, *a, **k: s.scatter(*a, **k), False),
    "scatter_add_": (lambda s, *a, **k: s.scatter_add(*a, **k), False),
    "index_put_": (lambda s, *a, **k: s.index_put(*a, **k), False),
    "tril_": (lambda s, *a, **k: s.tril(*a, **k), False),
    "triu_": (lambda s, *a, **k: s.triu(*a, **k), False),
    "clamp_": (lambda s, *a, **k: s.clamp(*a, **k), True),
    "clip_": (lambda s, *a, **k: s.clamp(*a, **k), True),
    "clamp_min_": (lambda s, *a, **k: s.clamp_min(*a, **k), True),
    "clamp_max_": (lambda s, *a, **k: s.clamp_max(*a, **k), True),
    "cumsum_": (lambda s, *a, **k: s.cumsum(*a, **k), False),
}
# the out-of-place method each in-place form needs (only installed when it exists)
_NEEDS = {"relu_": "relu", "exp_": "exp", "sqrt_": "sqrt", "tanh_": "tanh",
          "sigmoid_": "sigmoid", "abs_": "abs", "log_": "log", "square_": "square",
          "pow_": "pow", "__ipow__": "__pow__", "neg_": "__neg__", "masked_fill_": "masked_fill",
          "scatter_": "scatter", "scatter_add_": "scatter_add", "index_put_": "index_put",
          "tril_": "tril", "triu_": "triu", "clamp_": "clamp", "clip_": "clamp",
          "clamp_min_": "clamp_min", "clamp_max_": "clamp_max", "cumsum_": "cumsum"}

_OTHER_INPLACE = (
    "fill_", "zero_", "pow_", "neg_", "abs_", "sqrt_", "exp_", "log_", "clamp_", "clamp_min_",
    "clamp_max_", "addcmul_", "addcdiv_", "lerp_", "relu_", "sign_", "uniform_", "normal_",
    "random_", "exponential_", "masked_fill_", "__ipow__", "__imatmul__", "gelu_", "tanh_",
    "sigmoid_", "reciprocal_", "rsqrt_", "square_",
    "maximum_", "minimum_", "index_put_", "scatter_", "index_add_", "t_", "transpose_",
    "squeeze_", "unsqueeze_", "resize_", "set_",
)
# the trigonometric and hyperbolic families: in-place forms rebase onto the out-of-place op
# (tan, expm1 and exp2 save their output; the others save their input, so they need a snapshot of
# self)
_TRIG = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
         "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "log1p", "expm1", "erf",
         "erfc", "log2", "log10", "exp2")
for _n in _TRIG:
    _REBASE[_n + "_"] = ((lambda s, _op=_n: getattr(s, _op)()), _n not in ("tan", "expm1", "exp2"))
    _NEEDS[_n + "_"] = _n
# floor / ceil / round / trunc save nothing (their gradient is zero): no snapshot either
_ROUNDING = ("floor", "ceil", "round", "trunc", "fix")
for _n in _ROUNDING:
    _REBASE[_n + "_"] = ((lambda s, _op=_n: getattr(s, _op)()), False)
    _NEEDS[_n + "_"] = _n
_OTHER_INPLACE = _OTHER_INPLACE + tuple(n + "_" for n in _TRIG + _ROUNDING)


def _check_target(self, name):
    if self.requires_grad and self.grad_fn is None:
        raise RuntimeError(_LEAF_MSG)
    base = self.__dict__.get("_ag_base")
    if base is not None:
        if base.requires_grad and base.grad_fn is None:
            raise RuntimeError(_VIEW_LEAF_MSG)
        if base.requires_grad:
            raise RuntimeError(
                f"{name}: in-place modification of a view of a tensor that requires grad is not "
                "supported by shardopt's autograd (the base's gradient would be lost); clone() "
                "the view first or modify the base")


class FillBackward0(c.OpNode):
    """History of a tensor overwritten with a constant (or a 0-d tensor value)."""

    __slots__ = ()

    def _apply(self, grads):
        g = grads[0]
        res = [None]
        if len(self.next_functions) > 1:
            vm = self._ctx
            res.append(c.fit(g.sum(), vm) if vm and g is not None else None)
        return res


class CopySlices(c.OpNode):
    """History of ``self[index] = value``: the written region gets its gradient from ``value``,
    the rest from the old history."""

    __slots__ = ()

    def _apply(self, grads):
        g = grads[0]
        index, m_self, m_value = self._ctx
        g_self = g_value = None
        if m_value is not None:
            g_value = c.fit(c.RAW_M["__getitem__"](g, index), m_value) \
                if isinstance(m_value, tuple) else None
        if m_self is not None:
            g_self = c.RAW_M["clone"](g)
            c.RAW_M["__setitem__"](g_self, index, 0)
        return [g_self, g_value]


def _wrap_rebase(raw, name, outplace, snapshot):
    def method(self, *args, **kw):
        if _state.enabled and (self.requires_grad or c.any_grad(*args, *kw.values())):
            _check_target(self, name)
            src = _raw_clone_with_history(self) if snapshot else self
            res = outplace(src, *args, **kw)
            if res is None:  # e.g. copy_ from something that is not a tensor
                raise RuntimeError(f"{name}: unsupported arguments under autograd")
            gf = res.grad_fn
            c.RAW_M["copy_"](self, res)
            if gf is not None:
                set_history(self, gf)
            return self
        return raw(self, *args, **kw)
    method.__name__ = name
    method.__doc__ = raw.__doc__
    method.__wrapped__ = raw  # the raw C op (functools convention)
    return method


def _wrap_fill(raw, name):
    def method(self, *args, **kw):
        if _state.enabled and (self.requires_grad or c.any_grad(*args, *kw.values())):
            _check_target(self, name)
            value = args[0] if args else kw.get("value")
            e_self = edge(self)
            raw(self, *args, **kw)
            node = FillBackward0()
            if isinstance(value, _TB) and value.requires_grad:
                node.next_functions = (e_self, edge(value))
                node._ctx = c.meta(value)
            else:
                node.next_functions = (e_self,)
                node._ctx = None
            set_history(self, node)
            return self
        return raw(self, *args, **kw)
    method.__name__ = name
    method.__doc__ = raw.__doc__
    method.__wrapped__ = raw  # the raw C op (functools convention)
    return method


def _wrap_setitem(raw):
    def __setitem__(self, index, value):
        if _state.enabled and (self.requires_grad or c.any_grad(value)):
            _check_target(self, "__setitem__")
            index = normalize_index(self, index)
            e_self = edge(self)
            m_self = c.meta(self)
            m_value = c.meta(value)
            raw(self, index, value)
            node = CopySlices()
            node.next_functions = (e_self, edge(value))
            node._ctx = (index, m_self, m_value)
            set_history(self, node)
            return None
        return raw(self, normalize_index(self, index), value)
    __setitem__.__doc__ = raw.__doc__
    __setitem__.__wrapped__ = raw  # the raw C op (functools convention)
    return __setitem__


def _wrap_unsupported(raw, name):
    def method(self, *args, **kw):
        if _state.enabled and (self.requires_grad or c.any_grad(*args, *kw.values())):
            _check_target(self, name)
            raise RuntimeError(
                f"{name}: this in-place operation is not differentiable in shardopt's autograd; "
                "use the out-of-place form, or run it under shardopt.no_grad()")
        return raw(self, *args, **kw)
    method.__name__ = name
    method.__doc__ = raw.__doc__
    method.__wrapped__ = raw  # the raw C op (functools convention)
    return method


def build(methods) -> None:
    for name, (outplace, snapshot) in _REBASE.items():
        if name in c.RAW_M and _NEEDS.get(name, name) in c.RAW_M:
            methods[name] = _wrap_rebase(c.RAW_M[name], name, outplace, snapshot)
    for name in ("fill_", "zero_"):
        if name in c.RAW_M:
            methods[name] = _wrap_fill(c.RAW_M[name], name)
    if "__setitem__" in c.RAW_M:
        methods["__setitem__"] = _wrap_setitem(c.RAW_M["__setitem__"])
    for name in _OTHER_INPLACE:
        if name in c.RAW_M and name not in methods:
            methods[name] = _wrap_unsupported(c.RAW_M[name], name)
