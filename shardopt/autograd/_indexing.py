"""Differentiable indexing, selection and clamping: gather / scatter / scatter_add /
index_select / masked_fill / where / clamp / max / min / maximum / minimum / sort / topk /
cumsum / tril / triu, and the integer-tensor and boolean indices of ``__getitem__``.

Backward formulas (torch's derivatives.yaml, in our own code): the gradient of a gather-like
op is an accumulating scatter of the output gradient into zeros (index_put with
accumulate=True for ``x[idx]``, so duplicate indices add up); that of a selection by
max/min/sort/topk scatters the gradient to the chosen positions; clamp and where pass the
gradient where the input was chosen.  Index tensors are saved (version-checked) on the node.
"""
from .. import _C
from . import _common as c
from ._common import fit, meta, node_type, record, unpack, zeros

_TB = c._TensorBase
_state = c._state


def _zeros_like_meta(m):
    return zeros(m)


def _raw_scatter_(z, dim, index, src, accumulate):
    return _C._scatter_(z, dim, index, src, accumulate)


# ------------------------------------------------------------------ gather / scatter


def _bw_gather(node, g):
    m, dim = node._ctx
    index, = unpack(node)
    z = zeros(m)
    return (_raw_scatter_(z, dim, index, g.contiguous(), True),)


def _bw_scatter(node, g):
    m_self, m_src, dim = node._ctx
    index, = unpack(node)
    gs = gsrc = None
    if m_self:
        gs = _raw_scatter_(c.RAW_M["clone"](g), dim, index, 0, False)
    if m_src:
        gsrc = fit(_C._gather(g, dim, index), m_src)
    return gs, gsrc


def _bw_scatter_add(node, g):
    m_self, m_src, dim = node._ctx
    index, = unpack(node)
    return (g if m_self else None,
            fit(_C._gather(g, dim, index), m_src) if m_src else None)


def _bw_index_select(node, g):
    m, dim = node._ctx
    index, = unpack(node)
    z = zeros(m)
    if len(m[0]) == 0:
        return (g.reshape(()),)
    _C._index_put_(z, (slice(None),) * dim + (index,), g, True)
    return (z,)


GatherBackward0 = node_type("GatherBackward0", _bw_gather)
ScatterBackward0 = node_type("ScatterBackward0", _bw_scatter)
ScatterBackward1 = node_type("ScatterBackward1", _bw_scatter)
ScatterAddBackward0 = node_type("ScatterAddBackward0", _bw_scatter_add)
IndexSelectBackward0 = node_type("IndexSelectBackward0", _bw_index_select)


def _norm_dim(dim, ndim):
    return dim + max(ndim, 1) if dim < 0 else dim


def _gather(raw):
    def gather(input, dim, index, *, sparse_grad=False):
        out = raw(input, dim, index)
        if _state.enabled and c.any_grad(input):
            record(GatherBackward0, out, (input,), (meta(input), _norm_dim(dim, input.ndim)),
                   (index,))
        return out
    return gather


def _scatter(raw, add):
    def scatter(input, dim, index, src=None, *args, **kw):
        out = raw(input, dim, index, src, *args, **kw)
        value = kw.get("value")
        if _state.enabled and c.any_grad(input, src, value):
            if c.any_grad(value):
                raise RuntimeError("scatter(): a tensor 'value' is not differentiable; pass it "
                                   "as src")
            tsrc = src if isinstance(src, _TB) else None
            if add:
                cls = ScatterAddBackward0
            else:
                cls = ScatterBackward0 if tsrc is not None else ScatterBackward1
            if not add and kw.get("reduce") is not None:
                cls = ScatterAddBackward0  # reduce='add' (the only one accepted) adds src
            record(cls, out, (input, tsrc),
                   (meta(input), meta(tsrc), _norm_dim(dim, input.ndim)), (index,))
        return out
    return scatter


def _index_select(raw):
    def index_select(input, dim, index):
        out = raw(input, dim, index)
        if _state.enabled and c.any_grad(input):
            record(IndexSelectBackward0, out, (input,),
                   (meta(input), _norm_dim(dim, input.ndim)), (index,))
        return out
    return index_select


def _bw_index_put(node, g):
    m_self, m_val, index, accumulate = node._ctx
    gs = gv = None
    if m_self:
        if accumulate:
            gs = g
        else:  # the overwritten positions do not reach the output
            gs = _C._index_put_(c.RAW_M["clone"](g), index, 0, False)
    if m_val:
        gv = fit(c.RAW_M["__getitem__"](g, index), m_val)
    return gs, gv


IndexPutBackward0 = node_type("IndexPutBackward0", _bw_index_put)


def _index_put(raw):
    def index_put(input, indices, values, accumulate=False):
        out = raw(input, indices, values, accumulate)
        if _state.enabled and c.any_grad(input, values):
            index = tuple(slice(None) if t is None else t for t in indices)
            vt = values if isinstance(values, _TB) else None
            record(IndexPutBackward0, out, (input, vt),
                   (meta(input), meta(vt), index, bool(accumulate)))
        return out
    return index_put


# ------------------------------------------------------------------ where / masked_fill


def _bw_where(node, g):
    mx, my = node._ctx
    cond, = unpack(node)
    zero = _C.empty((), g.dtype, g.device).zero_()
    gx = fit(c.RAW_F["where"](cond, g, zero), mx) if mx else None
    gy = fit(c.RAW_F["where"](cond, zero, g), my) if my else None
    return gx, gy


WhereBackward0 = node_type("WhereBackward0", _bw_where)


def _where(raw):
    def where(condition, input=None, other=None, **kw):
        if input is None and other is None:
            return raw(condition)
        out = raw(condition, input, other, **kw)
        if _state.enabled and c.any_grad(input, other):
            c.check_out(kw, "where")
            record(WhereBackward0, out, (input, other), (meta(input), meta(other)), (condition,))
        return out
    return where


def _where_method(raw_where):
    def where(self, condition, other):
        return raw_where(condition, self, other)
    return where


def _masked_fill(raw):
    def masked_fill(input, mask, value):
        if _state.enabled and c.any_grad(input, value):
            out = raw(input, mask, value)  # checks arguments, computes the values
            v = value if isinstance(value, _TB) else None
            record(WhereBackward0, out, (v, input), (meta(v), meta(input)), (mask,))
            return out
        return raw(input, mask, value)
    return masked_fill


# ------------------------------------------------------------------ clamp / maximum


def _bw_clamp(node, g):
    mx, mmin, mmax, smin, smax = node._ctx
    x, tmin, tmax = unpack(node)
    lo = tmin if tmin is not None else smin
    hi = tmax if tmax is not None else smax
    dt = g.dtype
    keep = None
    if lo is not None:
        keep = (x >= lo).to(dt)
    if hi is not None:
        k2 = (x <= hi).to(dt)
        keep = k2 if keep is None else keep * k2
    gx = fit(g * keep, mx) if mx else None
    gmin = gmax = None
    if mmin:
        sel = (x < lo).to(dt)
        if hi is not None:
            sel = sel * (lo <= hi).to(dt)
        gmin = fit(g * sel, mmin)
    if mmax:
        sel = (x > hi).to(dt)
        if lo is not None:
            sel = 1 - (1 - sel) * (lo <= hi).to(dt)  # (x > hi) or (lo > hi)
        gmax = fit(g * sel, mmax)
    return gx, gmin, gmax


ClampBackward1 = node_type("ClampBackward1", _bw_clamp)
ClampBackward0 = node_type("ClampBackward0", _bw_clamp)
ClampMinBackward0 = node_type("ClampMinBackward0", _bw_clamp)
ClampMaxBackward0 = node_type("ClampMaxBackward0", _bw_clamp)


def _clamp(raw, which):
    def clamp(input, *args, **kw):
        out = raw(input, *args, **kw)
        if which == "min":
            lo, hi = c.arg(args, kw, 0, "min"), None
        elif which == "max":
            lo, hi = None, c.arg(args, kw, 0, "max")
        else:
            lo, hi = c.arg(args, kw, 0, "min"), c.arg(args, kw, 1, "max")
        if _state.enabled and c.any_grad(input, lo, hi):
            c.check_out(kw, "clamp")
            tlo = lo if isinstance(lo, _TB) else None
            thi = hi if isinstance(hi, _TB) else None
            cls = {"min": ClampMinBackward0, "max": ClampMaxBackward0}.get(
                which, ClampBackward0 if (tlo is not None or thi is not None) else ClampBackward1)
            record(cls, out, (input, tlo, thi),
                   (meta(input), meta(tlo), meta(thi), None if tlo is not None else lo,
                    None if thi is not None else hi), (input, tlo, thi))
        return out
    return clamp


def _bw_maximum(node, g):
    mx, my, is_max = node._ctx
    x, y = unpack(node)
    dt = g.dtype
    tie = (x == y).to(dt) * 0.5
    xw = ((x > y) if is_max else (x < y)).to(dt) + tie
    gx = fit(g * xw, mx) if mx else None
    gy = fit(g * (1 - xw), my) if my else None
    return gx, gy


MaximumBackward0 = node_type("MaximumBackward0", _bw_maximum)
MinimumBackward0 = node_type("MinimumBackward0", _bw_maximum)


def _maximum(raw, is_max):
    cls = MaximumBackward0 if is_max else MinimumBackward0

    def maximum(input, other, **kw):
        out = raw(input, other, **kw)
        if _state.enabled and c.any_grad(input, other):
            c.check_out(kw, "maximum" if is_max else "minimum")
            record(cls, out, (input, other), (meta(input), meta(other), is_max), (input, other))
        return out
    return maximum


# ------------------------------------------------------------------ max / min / sort / topk


def _bw_select_dim(node, g):
    m, dim, keepdim = node._ctx
    idx, = unpack(node)
    if len(m[0]) == 0:
        return (g,)
    if not keepdim:
        g = g.unsqueeze(dim)
        idx = idx.unsqueeze(dim)
    z = zeros(m)
    return (_raw_scatter_(z, dim, idx, g.contiguous(), False),)


def _bw_extreme_all(node, g):
    m, = node._ctx
    x, out = unpack(node)
    mask = (x == out).to(g.dtype)
    if out.dtype.is_floating_point and bool((out != out).item()):
        mask = (x != x).to(g.dtype)  # NaN won: it carries the gradient
    return (mask * (g / mask.sum()),)


MaxBackward0 = node_type("MaxBackward0", _bw_select_dim)
MinBackward0 = node_type("MinBackward0", _bw_select_dim)
MaxBackward1 = node_type("MaxBackward1", _bw_extreme_all)
MinBackward1 = node_type("MinBackward1", _bw_extreme_all)
SortBackward0 = node_type("SortBackward0", _bw_select_dim)
TopkBackward0 = node_type("TopkBackward0", _bw_select_dim)


def _extreme(raw, is_max):
    dim_cls = MaxBackward0 if is_max else MinBackward0
    all_cls = MaxBackward1 if is_max else MinBackward1
    pair = _maximum(c.RAW_F["maximum" if is_max else "minimum"], is_max) \
        if ("maximum" if is_max else "minimum") in c.RAW_F else None

    def extreme(input, dim=None, keepdim=False, **kw):
        if isinstance(dim, _TB) and pair is not None:
            return pair(input, dim)
        out = raw(input, dim, keepdim, **kw)
        if _state.enabled and isinstance(input, _TB) and input.requires_grad:
            if dim is None:
                record(all_cls, out, (input,), (meta(input),), (input, out))
            else:
                record(dim_cls, out.values, (input,),
                       (meta(input), _norm_dim(dim, input.ndim), keepdim), (out.indices,))
        return out
    return extreme


def _sortlike(raw, cls, dim_pos, default_dim=-1):
    def sortlike(input, *args, **kw):
        out = raw(input, *args, **kw)
        if _state.enabled and isinstance(input, _TB) and input.requires_grad:
            dim = c.arg(args, kw, dim_pos, "dim", default_dim)
            record(cls, out.values, (input,), (meta(input), _norm_dim(dim, input.ndim), True),
                   (out.indices,))
        return out
    return sortlike


# ------------------------------------------------------------------ cumsum / tril / triu


def _bw_cumsum(node, g):
    m, dim = node._ctx
    if len(m[0]) == 0:
        return (fit(g, m),)
    # d/dx_i sum_{j>=i} g_j: the reversed cumulative sum, as total - prefix + own term
    rev = g.sum(dim=dim, keepdim=True) - _C._cumsum(g, dim, None) + g
    return (fit(rev, m),)


def _bw_tri(node, g):
    lower, diagonal = node._ctx
    return ((g.tril(diagonal) if lower else g.triu(diagonal)),)


CumsumBackward0 = node_type("CumsumBackward0", _bw_cumsum)
TrilBackward0 = node_type("TrilBackward0", _bw_tri)
TriuBackward0 = node_type("TriuBackward0", _bw_tri)


def _cumsum(raw):
    def cumsum(input, dim, **kw):
        out = raw(input, dim, **kw)
        if _state.enabled and isinstance(input, _TB) and input.requires_grad:
            record(CumsumBackward0, out, (input,), (meta(input), _norm_dim(dim, input.ndim)))
        return out
    return cumsum


def _tri(raw, lower):
    cls = TrilBackward0 if lower else TriuBackward0

    def tri(input, diagonal=0):
        out = raw(input, diagonal)
        if _state.enabled and isinstance(input, _TB) and input.requires_grad:
            record(cls, out, (input,), (lower, diagonal))
        return out
    return tri


# ------------------------------------------------------------------ install

# Tensor methods whose raw versions _setup captures for the wrappers below
METHOD_NAMES = ("gather", "scatter", "scatter_add", "index_select", "where", "masked_fill",
                "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "max", "min",
                "sort", "topk", "cumsum", "tril", "triu", "masked_fill_", "scatter_",
                "scatter_add_", "index_put_", "index_put", "tril_", "triu_", "cumsum_")


def _wraps(fn, raw, name):
    fn.__name__ = name
    fn.__doc__ = raw.__doc__
    fn.__wrapped__ = raw  # the raw op (functools convention)
    return fn


def _both(methods, functions, name, make):
    if name in c.RAW_M:
        methods[name] = _wraps(make(c.RAW_M[name]), c.RAW_M[name], name)
    if name in c.RAW_F:
        functions[name] = _wraps(make(c.RAW_F[name]), c.RAW_F[name], name)


def build(methods, functions):
    _both(methods, functions, "gather", _gather)
    _both(methods, functions, "scatter", lambda r: _scatter(r, False))
    _both(methods, functions, "scatter_add", lambda r: _scatter(r, True))
    _both(methods, functions, "index_select", _index_select)
    if "where" in c.RAW_F:
        functions["where"] = _wraps(_where(c.RAW_F["where"]), c.RAW_F["where"], "where")
        methods["where"] = _wraps(_where_method(functions["where"]), c.RAW_F["where"], "where")
    _both(methods, functions, "masked_fill", _masked_fill)
    _both(methods, functions, "index_put", _index_put)
    for name, which in (("clamp", "both"), ("clip", "both"), ("clamp_min", "min"),
                        ("clamp_max", "max")):
        _both(methods, functions, name, lambda r, w=which: _clamp(r, w))
    _both(methods, functions, "maximum", lambda r: _maximum(r, True))
    _both(methods, functions, "minimum", lambda r: _maximum(r, False))
    _both(methods, functions, "max", lambda r: _extreme(r, True))
    _both(methods, functions, "min", lambda r: _extreme(r, False))
    _both(methods, functions, "sort", lambda r: _sortlike(r, SortBackward0, 0))
    _both(methods, functions, "topk", lambda r: _sortlike(r, TopkBackward0, 1))
    _both(methods, functions, "cumsum", _cumsum)
    _both(methods, functions, "tril", lambda r: _tri(r, True))
    _both(methods, functions, "triu", lambda r: _tri(r, False))
