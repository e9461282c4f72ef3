"""Differentiable views, indexing, copies and dtype/device conversion.

The gradient of a view is the inverse geometry applied to the output gradient (reshape back,
transpose back, inverse permutation, sum over expanded dims), and that of a slice/select/index
is a zero tensor of the input's shape with the gradient written into the same region. A view
made while recording remembers its base (``_ag_base``) so that in-place writes through it can
be refused instead of silently losing the base's gradient.
"""

from __future__ import annotations

from . import _common as c
from ._common import meta, node_type, record, sum_to, zeros

_TB = c._TensorBase
_state = c._state


def _bw_reshape(node, g):
    return (g.reshape(node._ctx),)


def _bw_expand(node, g):
    return (sum_to(g, node._ctx),)


def _bw_transpose(node, g):
    d0, d1 = node._ctx
    return (g.transpose(d0, d1),)


def _bw_t(node, g):
    return (g.t(),)


def _bw_permute(node, g):
    return (g.permute(node._ctx),)


def _bw_identity(node, g):
    return (g,)


def _bw_narrow(node, g):
    m, dim, start, length = node._ctx
    z = zeros(m)
    c.RAW_M["narrow"](z, dim, start, length).copy_(g)
    return (z,)


def _bw_select(node, g):
    m, dim, index = node._ctx
    z = zeros(m)
    c.RAW_M["select"](z, dim, index).copy_(g)
    return (z,)


def _bw_index(node, g):
    m, index = node._ctx
    z = zeros(m)
    c.RAW_M["__getitem__"](z, index).copy_(g)
    return (z,)


def _bw_adv_index(node, g):
    m, index = node._ctx
    z = zeros(m)
    c._C._index_put_(z, index, g, True)  # accumulate: duplicate indices add up
    return (z,)


def _bw_convert(node, g):
    dtype, device = node._ctx
    return (g._convert(dtype, device),)


ViewBackward0 = node_type("ViewBackward0", _bw_reshape)
ReshapeAliasBackward0 = node_type("ReshapeAliasBackward0", _bw_reshape)
UnsqueezeBackward0 = node_type("UnsqueezeBackward0", _bw_reshape)
SqueezeBackward0 = node_type("SqueezeBackward0", _bw_reshape)
ExpandBackward0 = node_type("ExpandBackward0", _bw_expand)
TransposeBackward0 = node_type("TransposeBackward0", _bw_transpose)
TBackward0 = node_type("TBackward0", _bw_t)
PermuteBackward0 = node_type("PermuteBackward0", _bw_permute)
CloneBackward0 = node_type("CloneBackward0", _bw_identity)
AliasBackward0 = node_type("AliasBackward0", _bw_identity)
NarrowBackward0 = node_type("NarrowBackward0", _bw_narrow)
SelectBackward0 = node_type("SelectBackward0", _bw_select)
SliceBackward0 = node_type("SliceBackward0", _bw_index)
IndexBackward0 = node_type("IndexBackward0", _bw_adv_index)
ToCopyBackward0 = node_type("ToCopyBackward0", _bw_convert)


def _mark_view(out, base):
    out.__dict__["_ag_base"] = base.__dict__.get("_ag_base", base)


def _view_wrapper(raw, name, cls, ctx_fn, is_view=True):
    """Method wrapper: run raw; when recording, attach ``cls`` with ``ctx_fn(self, out, a, kw)``."""
    def method(self, *args, **kw):
        out = raw(self, *args, **kw) if kw else raw(self, *args)
        if self.requires_grad and _state.enabled and out is not self:
            record(cls, out, (self,), ctx_fn(self, out, args, kw))
            if is_view:
                _mark_view(out, self)
        return out
    method.__name__ = name
    method.__doc__ = raw.__doc__
    method.__wrapped__ = raw  # the raw C op (functools convention)
    return method


def _as_function(method, raw_function, name):
    def function(input, *args, **kw):
        if not isinstance(input, _TB):
            return raw_function(input, *args, **kw)  # its own argument error
        return method(input, *args, **kw)
    function.__name__ = name
    function.__doc__ = method.__doc__
    function.__wrapped__ = raw_function
    return function


def _in_shape(self, out, args, kw):
    return self._shape


def _transpose_ctx(self, out, args, kw):
    return (c.arg(args, kw, 0, "dim0"), c.arg(args, kw, 1, "dim1"))


def _permute_ctx(self, out, args, kw):
    dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
    if not dims:
        dims = kw.get("dims", ())
    nd = self.ndim
    dims = [d + nd if d < 0 else d for d in dims]
    inv = [0] * nd
    for i, d in enumerate(dims):
        inv[d] = i
    return tuple(inv)


def _narrow_ctx(self, out, args, kw):
    dim = c.arg(args, kw, 0, "dim")
    start = c.arg(args, kw, 1, "start")
    length = c.arg(args, kw, 2, "length")
    if isinstance(start, _TB):
        start = int(start.item())
    return (meta(self), dim, start, length)


def _select_ctx(self, out, args, kw):
    return (meta(self), c.arg(args, kw, 0, "dim"), c.arg(args, kw, 1, "index"))


def _list_index(self, it):
    from .._ops.creation import tensor
    # an empty list selects nothing: an empty int64 index, as torch
    return tensor(it, dtype=None if it else c._C.int64, device=self.device)


def normalize_index(self, index):
    """Lists inside an index become index tensors on self's device (torch treats ``x[[0, 2]]``
    and ``x[:, [1, 1]]`` as integer-tensor indexing; bool lists as masks)."""
    if isinstance(index, list):
        return _list_index(self, index)
    if isinstance(index, tuple) and any(isinstance(it, list) for it in index):
        return tuple(_list_index(self, it) if isinstance(it, list) else it for it in index)
    return index


def _is_advanced(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(it, _TB) for it in items)


def _wrap_getitem(raw):
    def __getitem__(self, index):
        index = normalize_index(self, index)
        out = raw(self, index)
        if self.requires_grad and _state.enabled:
            if _is_advanced(index):
                # a copy: its gradient is an accumulating index_put into zeros
                record(IndexBackward0, out, (self,), (meta(self), index))
            else:
                record(SliceBackward0, out, (self,), (meta(self), index))
                _mark_view(out, self)
        return out
    __getitem__.__doc__ = raw.__doc__
    __getitem__.__wrapped__ = raw  # the raw C op (functools convention)
    return __getitem__


def _wrap_convert(raw):
    def _convert(self, dtype, device):
        out = raw(self, dtype, device)
        if self.requires_grad and _state.enabled and out is not self:
            record(ToCopyBackward0, out, (self,), (self.dtype, self.device))
        return out
    return _convert


_VIEWS = {
    # name: (node class, ctx function, is a view of the input)
    "view": (ViewBackward0, _in_shape, True),
    "reshape": (ReshapeAliasBackward0, _in_shape, True),
    "flatten": (ReshapeAliasBackward0, _in_shape, True),
    "unflatten": (ReshapeAliasBackward0, _in_shape, True),
    "view_as": (ViewBackward0, _in_shape, True),
    "reshape_as": (ReshapeAliasBackward0, _in_shape, True),
    "unsqueeze": (UnsqueezeBackward0, _in_shape, True),
    "squeeze": (SqueezeBackward0, _in_shape, True),
    "expand": (ExpandBackward0, _in_shape, True),
    "expand_as": (ExpandBackward0, _in_shape, True),
    "broadcast_to": (ExpandBackward0, _in_shape, True),
    "transpose": (TransposeBackward0, _transpose_ctx, True),
    "swapaxes": (TransposeBackward0, _transpose_ctx, True),
    "t": (TBackward0, None, True),
    "permute": (PermuteBackward0, _permute_ctx, True),
    "narrow": (NarrowBackward0, _narrow_ctx, True),
    "select": (SelectBackward0, _select_ctx, True),
    "clone": (CloneBackward0, None, False),
    "contiguous": (CloneBackward0, None, False),
}


def build(methods, functions) -> None:
    for name, (cls, ctx_fn, is_view) in _VIEWS.items():
        if name in c.RAW_M:
            methods[name] = _view_wrapper(c.RAW_M[name], name, cls, ctx_fn or (lambda *a: None),
                                          is_view)
        if name in c.RAW_F:
            # the functional form (shardopt.reshape(x, ...)) goes through the method wrapper
            if name in methods:
                functions[name] = _as_function(methods[name], c.RAW_F[name], name)
    if "__getitem__" in c.RAW_M:
        methods["__getitem__"] = _wrap_getitem(c.RAW_M["__getitem__"])
    if "_convert" in c.RAW_M:
        methods["_convert"] = _wrap_convert(c.RAW_M["_convert"])

