"""Differentiable arithmetic, reductions, matmul, activations, linear, cat/stack.

Each ``_rec_*`` records the node for an already computed output; each ``_bw_*`` is the
backward formula (torch's derivatives.yaml formulas, in our own code). ``build()`` turns the
raw ops present in RAW_M / RAW_F into wrapped methods and functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math

from . import _common as c
from ._common import fit, meta, node_type, record, unpack, zeros

if TYPE_CHECKING:
    from .._tensor import Tensor

_TB = c._TensorBase
_state = c._state

# ------------------------------------------------------------------ add / sub


def _bw_add(node, g):
    mx, my, alpha = node._ctx
    gx = fit(g, mx) if mx else None
    gy = None
    if my:
        gy = fit(g if alpha == 1 else g * alpha, my)
    return gx, gy


AddBackward0 = node_type("AddBackward0", _bw_add)
SubBackward0 = node_type("SubBackward0", _bw_add)
RsubBackward1 = node_type("RsubBackward1", _bw_add)


def _rec_add(out, x, y, args, kw):
    alpha = c.arg(args, kw, 0, "alpha", 1)
    return record(AddBackward0, out, (x, y), (meta(x), meta(y), alpha))


def _rec_sub(out, x, y, args, kw):
    alpha = c.arg(args, kw, 0, "alpha", 1)
    return record(SubBackward0, out, (x, y), (meta(x), meta(y), -alpha))


def _rec_rsub(out, x, y, args, kw):  # out = x - y with x the Python scalar
    return record(RsubBackward1, out, (x, y), (meta(x), meta(y), -1))


# ------------------------------------------------------------------ mul / div


def _bw_mul(node, g):
    mx, my, sx, sy = node._ctx
    tx, ty = unpack(node)
    gx = fit(g * (ty if ty is not None else sy), mx) if mx else None
    gy = fit(g * (tx if tx is not None else sx), my) if my else None
    return gx, gy


MulBackward0 = node_type("MulBackward0", _bw_mul)


def _rec_mul(out, x, y, args, kw):
    mx, my = meta(x), meta(y)
    xt, yt = isinstance(x, _TB), isinstance(y, _TB)
    node_saved = (x if (my and xt) else None, y if (mx and yt) else None)
    return record(MulBackward0, out, (x, y),
                  (mx, my, None if xt else x, None if yt else y), node_saved)


def _bw_div(node, g):
    mx, my, sx, sy = node._ctx
    tx, ty = unpack(node)
    x = tx if tx is not None else sx
    y = ty if ty is not None else sy
    gx = fit(g / y, mx) if mx else None
    gy = fit(-g * ((x / y) / y), my) if my else None
    return gx, gy


DivBackward0 = node_type("DivBackward0", _bw_div)


def _rec_div(out, x, y, args, kw):
    if c.arg(args, kw, 0, "rounding_mode") is not None:
        raise RuntimeError("div with a rounding_mode is not differentiable")
    mx, my = meta(x), meta(y)
    xt, yt = isinstance(x, _TB), isinstance(y, _TB)
    node_saved = (x if (my and xt) else None, y if yt else None)
    return record(DivBackward0, out, (x, y),
                  (mx, my, None if xt else x, None if yt else y), node_saved)


# ------------------------------------------------------------------ pow


def _bw_pow(node, g):
    mx, my, sx, sy = node._ctx
    tx, ty, tout = unpack(node)
    x = tx if tx is not None else sx
    y = ty if ty is not None else sy
    gx = gy = None
    if mx:
        if ty is None:
            gx = zeros(mx) if y == 0 else g * (y * x ** (y - 1))
        else:  # d/dx x^y = y x^(y-1), defined as 0 where y == 0
            gx = c.where(y != 0, g * (y * x ** (y - 1)), 0.0)
        gx = fit(gx, mx)
    if my:  # d/dy x^y = x^y log(x), defined as 0 where x == 0 and y >= 0
        if tx is None:
            if x == 0:
                gy = c.where(y < 0, g * tout * float("-inf"), 0.0)
            else:
                gy = g * tout * (math.log(x) if x > 0 else float("nan"))
        else:
            val = g * tout * x.log()
            gy = c.where(x != 0, val, c.where(y < 0, val, 0.0))
        gy = fit(gy, my)
    return gx, gy


PowBackward0 = node_type("PowBackward0", _bw_pow)


def _rec_pow(out, x, y, args, kw):
    mx, my = meta(x), meta(y)
    xt, yt = isinstance(x, _TB), isinstance(y, _TB)
    if not out.dtype.is_floating_point:
        return out
    saved = (x if xt else None, y if yt else None, out if my else None)
    return record(PowBackward0, out, (x, y), (mx, my, None if xt else x, None if yt else y),
                  saved)


# ------------------------------------------------------------------ unary


def _unary_type(name, bw):
    return node_type(name, bw)


def _bw_neg(node, g):
    return (-g,)


def _bw_exp(node, g):
    out, = unpack(node)
    return (g * out,)


def _bw_log(node, g):
    x, = unpack(node)
    return (g / x,)


def _bw_sqrt(node, g):
    out, = unpack(node)
    return (g / (out * 2),)


def _bw_abs(node, g):
    x, = unpack(node)
    return (g * x.sign(),)


def _bw_tanh(node, g):
    out, = unpack(node)
    return (g * (1.0 - out * out),)


def _bw_sigmoid(node, g):
    out, = unpack(node)
    return (g * (out * (1.0 - out)),)


def _bw_square(node, g):
    x, = unpack(node)
    return (g * (x * 2.0),)


def _bw_relu(node, g):
    out, = unpack(node)
    return (g * (out > 0).to(g.dtype),)


# trigonometric and hyperbolic families (torch's derivatives.yaml formulas)
def _bw_sin(node, g):
    x, = unpack(node)
    return (g * x.cos(),)


def _bw_cos(node, g):
    x, = unpack(node)
    return (g * -x.sin(),)


def _bw_tan(node, g):
    out, = unpack(node)
    return (g * (1.0 + out * out),)


def _bw_asin(node, g):
    x, = unpack(node)
    return (g * (1.0 - x * x).rsqrt(),)


def _bw_acos(node, g):
    x, = unpack(node)
    return (g * -(1.0 - x * x).rsqrt(),)


def _bw_atan(node, g):
    x, = unpack(node)
    return (g / (x * x + 1.0),)


def _bw_sinh(node, g):
    x, = unpack(node)
    return (g * x.cosh(),)


def _bw_cosh(node, g):
    x, = unpack(node)
    return (g * x.sinh(),)


def _bw_asinh(node, g):
    x, = unpack(node)
    return (g * (x * x + 1.0).rsqrt(),)


def _bw_acosh(node, g):
    x, = unpack(node)
    return (g * (x * x - 1.0).rsqrt(),)


def _bw_atanh(node, g):
    x, = unpack(node)
    return (g / (1.0 - x * x),)


NegBackward0 = node_type("NegBackward0", _bw_neg)
ExpBackward0 = node_type("ExpBackward0", _bw_exp)
LogBackward0 = node_type("LogBackward0", _bw_log)
SqrtBackward0 = node_type("SqrtBackward0", _bw_sqrt)
AbsBackward0 = node_type("AbsBackward0", _bw_abs)
ReluBackward0 = node_type("ReluBackward0", _bw_relu)
TanhBackward0 = node_type("TanhBackward0", _bw_tanh)
SigmoidBackward0 = node_type("SigmoidBackward0", _bw_sigmoid)
SquareBackward0 = node_type("PowBackward0", _bw_square)

def _bw_zero(node, g):
    # floor / ceil / round / trunc: piecewise constant, torch's zeros_like(grad)
    return (g.new_zeros(g.shape),)


def _bw_log2(node, g):
    x, = unpack(node)
    return (g / (x * math.log(2.0)),)


def _bw_log10(node, g):
    x, = unpack(node)
    return (g / (x * math.log(10.0)),)


def _bw_exp2(node, g):
    out, = unpack(node)
    return (g * (out * math.log(2.0)),)


def _bw_rsqrt(node, g):
    out, = unpack(node)
    return (g * (out * out * out) * -0.5,)


def _bw_reciprocal(node, g):
    out, = unpack(node)
    return (g * -(out * out),)


def _bw_log1p(node, g):
    x, = unpack(node)
    return (g / (x + 1.0),)


def _bw_expm1(node, g):
    out, = unpack(node)
    return (g * (out + 1.0),)


_TWO_OVER_SQRT_PI = 1.1283791670955126


def _bw_erf(node, g):
    x, = unpack(node)
    return (g * ((-(x * x)).exp() * _TWO_OVER_SQRT_PI),)


def _bw_erfc(node, g):
    x, = unpack(node)
    return (g * ((-(x * x)).exp() * -_TWO_OVER_SQRT_PI),)


# what each unary op saves: "in" its input, "out" its output, None nothing
_UNARY = {
    "neg": (NegBackward0, None), "__neg__": (NegBackward0, None),
    "negative": (NegBackward0, None),
    "exp": (ExpBackward0, "out"), "log": (LogBackward0, "in"), "sqrt": (SqrtBackward0, "out"),
    "abs": (AbsBackward0, "in"), "__abs__": (AbsBackward0, "in"),
    "relu": (ReluBackward0, "out"),
    "tanh": (TanhBackward0, "out"), "sigmoid": (SigmoidBackward0, "out"),
    "square": (SquareBackward0, "in"),
    "sin": (node_type("SinBackward0", _bw_sin), "in"),
    "cos": (node_type("CosBackward0", _bw_cos), "in"),
    "tan": (node_type("TanBackward0", _bw_tan), "out"),
    "asin": (node_type("AsinBackward0", _bw_asin), "in"),
    "acos": (node_type("AcosBackward0", _bw_acos), "in"),
    "atan": (node_type("AtanBackward0", _bw_atan), "in"),
    "sinh": (node_type("SinhBackward0", _bw_sinh), "in"),
    "cosh": (node_type("CoshBackward0", _bw_cosh), "in"),
    "asinh": (node_type("AsinhBackward0", _bw_asinh), "in"),
    "acosh": (node_type("AcoshBackward0", _bw_acosh), "in"),
    "atanh": (node_type("AtanhBackward0", _bw_atanh), "in"),
    "rsqrt": (node_type("RsqrtBackward0", _bw_rsqrt), "out"),
    "reciprocal": (node_type("ReciprocalBackward0", _bw_reciprocal), "out"),
    "sign": (node_type("SignBackward0", _bw_zero), None),
    "floor": (node_type("FloorBackward0", _bw_zero), None),
    "ceil": (node_type("CeilBackward0", _bw_zero), None),
    "round": (node_type("RoundBackward0", _bw_zero), None),
    "trunc": (node_type("TruncBackward0", _bw_zero), None),
    "log1p": (node_type("Log1PBackward0", _bw_log1p), "in"),
    "expm1": (node_type("Expm1Backward0", _bw_expm1), "out"),
    "erf": (node_type("ErfBackward0", _bw_erf), "in"),
    "erfc": (node_type("ErfcBackward0", _bw_erfc), "in"),
    "log2": (node_type("Log2Backward0", _bw_log2), "in"),
    "log10": (node_type("Log10Backward0", _bw_log10), "in"),
    "exp2": (node_type("Exp2Backward0", _bw_exp2), "out"),
}
_UNARY["fix"] = _UNARY["trunc"]
# numpy-style aliases share the op's backward
for _name in ("asin", "acos", "atan", "asinh", "acosh", "atanh"):
    _UNARY["arc" + _name[1:]] = _UNARY[_name]

def _bw_gelu(node, g):
    x, = unpack(node)
    # the fused C kernel (erf or tanh form): one pass instead of ~10 composed ones
    return (c.RAW_F["_gelu_backward"](g, x, node._ctx),)


GeluBackward0 = node_type("GeluBackward0", _bw_gelu)


# ------------------------------------------------------------------ reductions


def _bw_sum(node, g):
    shape, dtype, device, dims, keepdim, scale = node._ctx
    if dims is None:
        g = g.reshape((1,) * len(shape)) if len(shape) else g
    elif not keepdim:
        for d in dims:
            g = g.unsqueeze(d)
    if scale is not None:
        g = g / scale
    g = g.expand(shape)
    if g.dtype != dtype or g.device != device:
        g = g._convert(dtype, device)
    return (g,)


SumBackward0 = node_type("SumBackward0", _bw_sum)
SumBackward1 = node_type("SumBackward1", _bw_sum)
MeanBackward0 = node_type("MeanBackward0", _bw_sum)
MeanBackward1 = node_type("MeanBackward1", _bw_sum)


def _rec_reduce(out, x, args, kw, mean):
    dims = c.norm_dims(c.arg(args, kw, 0, "dim"), x.ndim)
    keepdim = bool(c.arg(args, kw, 1, "keepdim", False))
    scale = None
    if mean:
        scale = 1
        for i, s in enumerate(x._shape):
            if dims is None or i in dims:
                scale *= s
    cls = (MeanBackward0 if dims is None else MeanBackward1) if mean else \
        (SumBackward0 if dims is None else SumBackward1)
    return record(cls, out, (x,), (x._shape, x.dtype, x.device, dims, keepdim, scale))


# ------------------------------------------------------------------ matmul


def _bw_matmul(node, g):
    a, b = unpack(node)
    ma, mb = node._ctx
    da, db = a.ndim, b.ndim
    ga = gb = None
    if da == 1 and db == 1:
        if ma:
            ga = g * b
        if mb:
            gb = g * a
    elif da == 2 and db == 2:
        if ma:
            ga = g.matmul(b.t())
        if mb:
            gb = a.t().matmul(g)
    else:
        a2 = a.unsqueeze(0) if da == 1 else a
        b2 = b.unsqueeze(-1) if db == 1 else b
        g2 = g.unsqueeze(-2) if da == 1 else g
        g2 = g2.unsqueeze(-1) if db == 1 else g2
        if ma:
            ga = g2.matmul(b2.transpose(-1, -2))
            if da == 1:
                ga = ga.squeeze(-2)
        if mb:
            gb = a2.transpose(-1, -2).matmul(g2)
            if db == 1:
                gb = gb.squeeze(-1)
    return (fit(ga, ma) if ma else None, fit(gb, mb) if mb else None)


MmBackward0 = node_type("MmBackward0", _bw_matmul)
MatmulBackward0 = node_type("MatmulBackward0", _bw_matmul)


def _rec_matmul(out, x, y, args, kw):
    mx, my = meta(x), meta(y)
    cls = MmBackward0 if (x.ndim == 2 and y.ndim == 2) else MatmulBackward0
    # both operands are needed whichever one needs the gradient (keep it simple: save both)
    return record(cls, out, (x, y), (mx, my), (x, y))


# ------------------------------------------------------------------ mse_loss


def _bw_mse(node, g):
    d, = unpack(node)
    scale, mi, mt = node._ctx
    raw = c.RAW_M
    # d(mean((i - t)^2))/di = 2 (i - t) / N: one scale of the saved difference
    gi = raw["__mul__"](d, raw["__mul__"](g, scale) if scale != 1.0 else g)
    gt = fit(raw["__neg__"](gi), mt) if mt else None
    return (fit(gi, mi) if mi else None), gt


MseLossBackward0 = node_type("MseLossBackward0", _bw_mse)


def mse_loss(input, target, reduction):
    """(input - target)^2 reduced by 'mean' or 'sum' as one recorded node (torch's
    MseLossBackward0) instead of three; the caller validated the arguments."""
    raw = c.RAW_M
    d = raw["__sub__"](input, target)
    sq = raw["__mul__"](d, d)
    out = raw["mean"](sq) if reduction == "mean" else raw["sum"](sq)
    if _state.enabled and c.any_grad(input, target):
        scale = 2.0 / sq.numel() if reduction == "mean" else 2.0
        record(MseLossBackward0, out, (input, target), (scale, meta(input), meta(target)), (d,))
    return out


# ------------------------------------------------------------------ linear


def _as_rows(t):
    """t viewed as (rows, last dim); rows computed explicitly because reshape(-1, 0) is
    ambiguous (a shard with zero features is legal)."""
    last = t._shape[-1] if t.ndim else 1
    rows = 1
    for n in t._shape[:-1]:
        rows *= n
    return t.reshape(rows, last)


def _bw_linear(node, g):
    # raw ops: the engine runs with grad mode off, so the public wrappers would only add a
    # Python layer per call
    x, w = unpack(node)
    mx, mw, mb = node._ctx
    gx = gw = gb = None
    raw = c.RAW_M
    if mx:
        gx = fit(raw["matmul"](g, w), mx)
    if mw or mb:
        g2 = g if g.ndim == 2 else _as_rows(g)
        if mw:
            x2 = x if x.ndim == 2 else _as_rows(x)
            gw = fit(raw["matmul"](raw["t"](g2), x2), mw)
        if mb:
            gb = fit(raw["sum"](g2, 0), mb)
    return gx, gw, gb


LinearBackward0 = node_type("LinearBackward0", _bw_linear)


def linear(input, weight, bias=None) -> Tensor:
    """y = input @ weight.T + bias (torch.nn.functional.linear)."""
    if not isinstance(input, _TB) or not isinstance(weight, _TB):
        raise TypeError(f"linear(): argument 'input' and 'weight' must be Tensors, got "
                        f"{type(input).__name__} and {type(weight).__name__}")
    if input.ndim == 0 or weight.ndim not in (1, 2):
        raise RuntimeError(f"linear(): input must have at least 1 dimension and weight 1 or 2, "
                           f"got input {list(input._shape)} and weight {list(weight._shape)}")
    # the raw transpose: linear records one node for weight itself, not a TBackward view
    out = c.RAW_M["matmul"](input, c.RAW_M["t"](weight) if weight.ndim == 2 else weight)
    if bias is not None:
        if (isinstance(bias, _TB) and bias.dtype == out.dtype and bias.device == out.device
                and (bias.ndim == 0 or (bias.ndim == 1 and out.ndim >= 1
                                        and bias._shape[0] == out._shape[-1]))):
            c.RAW_M["add_"](out, bias)  # into the fresh matmul result: no second buffer
        else:
            out = c.RAW_M["__add__"](out, bias)  # promotion / broadcasting rules decide
    if _state.enabled and c.any_grad(input, weight, bias):
        if weight.ndim != 2:
            raise RuntimeError("linear(): autograd needs a 2-D weight")
        record(LinearBackward0, out, (input, weight, bias),
               (meta(input), meta(weight), meta(bias)), (input, weight))
    return out


# ------------------------------------------------------------------ cat / stack


def _bw_cat(node, g):
    dim, metas, sizes = node._ctx
    res = []
    off = 0
    for m, n in zip(metas, sizes):
        if m is None or n is None:
            res.append(None if m is None else zeros(m))
            off += n or 0
            continue
        res.append(fit(g.narrow(dim, off, n), m))
        off += n
    return tuple(res)


def _bw_stack(node, g):
    dim, metas = node._ctx
    return tuple(fit(g.select(dim, i), m) if m else None for i, m in enumerate(metas))


CatBackward0 = node_type("CatBackward0", _bw_cat)
StackBackward0 = node_type("StackBackward0", _bw_stack)


def _wrap_cat(raw):
    def cat(tensors, *args, **kw):
        if _state.enabled and isinstance(tensors, (list, tuple)):  # else raw raises torch's error
            if c.any_grad(*tensors):
                c.check_out(kw, "cat")
                out = raw(tensors, *args, **kw)
                dim = c.arg(args, kw, 0, "dim", 0)
                ndim = out.ndim
                dim = dim + ndim if dim < 0 else dim
                sizes = [None if (t.ndim == 1 and t._shape[0] == 0 and ndim != 1) else
                         t._shape[dim] for t in tensors]
                return record(CatBackward0, out, tensors, (dim, [meta(t) for t in tensors], sizes))
        return raw(tensors, *args, **kw)
    cat.__doc__ = raw.__doc__
    cat.__wrapped__ = raw  # the raw C op (functools convention)
    return cat


def _wrap_stack(raw):
    def stack(tensors, *args, **kw):
        if _state.enabled and isinstance(tensors, (list, tuple)):  # else raw raises torch's error
            if c.any_grad(*tensors):
                c.check_out(kw, "stack")
                out = raw(tensors, *args, **kw)
                dim = c.arg(args, kw, 0, "dim", 0)
                dim = dim + out.ndim if dim < 0 else dim
                return record(StackBackward0, out, tensors, (dim, [meta(t) for t in tensors]))
        return raw(tensors, *args, **kw)
    stack.__doc__ = raw.__doc__
    stack.__wrapped__ = raw  # the raw C op (functools convention)
    return stack


# ------------------------------------------------------------------ wrapper factories


def _binary_method(raw, rec, reverse, name):
    def method(self, other, *args, **kw):
        if (self.requires_grad or (isinstance(other, _TB) and other.requires_grad)) \
                and _state.enabled:
            c.check_out(kw, name)
            out = raw(self, other, *args, **kw)
            if out is NotImplemented:
                return out
            return rec(out, other, self, args, kw) if reverse else rec(out, self, other, args, kw)
        if args or kw:
            return raw(self, other, *args, **kw)
        return raw(self, other)  # no star-call: keeps the no-grad path close to the raw op
    method.__name__ = name
    method.__doc__ = raw.__doc__
    method.__wrapped__ = raw  # the raw C op (functools convention)
    return method


def _binary_function(raw, rec, name):
    def function(input, other, *args, **kw):
        if c.any_grad(input, other) and _state.enabled:
            c.check_out(kw, name)
            return rec(raw(input, other, *args, **kw), input, other, args, kw)
        if args or kw:
            return raw(input, other, *args, **kw)
        return raw(input, other)
    function.__name__ = name
    function.__doc__ = raw.__doc__
    function.__wrapped__ = raw  # the raw C op (functools convention)
    return function


def _unary(raw, cls, saves, name):
    def method(self, *args, **kw):
        if isinstance(self, _TB) and self.requires_grad and _state.enabled:
            c.check_out(kw, name)
            out = raw(self, *args, **kw)
            if saves == "in":
                return record(cls, out, (self,), None, (self,))
            record(cls, out, (self,))
            if saves == "out" and out.grad_fn is not None:
                c.save(out.grad_fn, out)
            return out
        if args or kw:
            return raw(self, *args, **kw)
        return raw(self)
    method.__name__ = name
    method.__doc__ = raw.__doc__
    method.__wrapped__ = raw  # the raw C op (functools convention)
    return method


def _gelu(raw, name):
    def gelu(self, *args, **kw):
        if isinstance(self, _TB) and self.requires_grad and _state.enabled:
            approximate = c.arg(args, kw, 0, "approximate", "none")
            out = raw(self, *args, **kw)
            return record(GeluBackward0, out, (self,), approximate, (self,))
        if kw:
            return raw(self, *args, **kw)
        return raw(self, *args)
    gelu.__name__ = name
    gelu.__doc__ = raw.__doc__
    gelu.__wrapped__ = raw  # the raw C op (functools convention)
    return gelu


def _reduce(raw, mean, name):
    def method(self, *args, **kw):
        if isinstance(self, _TB) and self.requires_grad and _state.enabled:
            c.check_out(kw, name)
            return _rec_reduce(raw(self, *args, **kw), self, args, kw, mean)
        if kw:
            return raw(self, *args, **kw)
        return raw(self, *args)
    method.__name__ = name
    method.__doc__ = raw.__doc__
    method.__wrapped__ = raw  # the raw C op (functools convention)
    return method


# ------------------------------------------------------------------ norm


def _bw_norm(node, g):
    x, out = unpack(node)
    p, dims, keepdim = node._ctx
    if dims is not None and not keepdim:
        for d in sorted(dims):
            g = g.unsqueeze(d)
            out = out.unsqueeze(d)
    g = g.to(x.dtype)
    out = out.to(x.dtype)
    if p == 0:
        return (x.new_zeros(x.shape),)
    if p == 1:
        return (x.sign() * g,)
    if math.isinf(p):  # torch splits the gradient evenly among the tied extreme elements
        hit = (x.abs() == out).to(x.dtype)
        count = hit.sum() if dims is None else hit.sum(dim=dims, keepdim=True)
        return (x.sign() * hit * (g / count),)
    scale = (g / out) if p == 2 else g / out.pow(p - 1)
    scale = scale.masked_fill(out == 0, 0.0)  # the zero vector's subgradient: 0, as torch
    if p == 2:
        return (x * scale,)
    return (x * x.abs().pow(p - 2) * scale,)


NormBackward1 = node_type("NormBackward1", _bw_norm)


def _norm(raw, name):
    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        out = raw(self, p, dim, keepdim, dtype)
        if isinstance(self, _TB) and self.requires_grad and _state.enabled:
            pv = 2.0 if p is None or (isinstance(p, str) and p == "fro") else float(p)
            dims = None
            if dim is not None:
                nd = max(self.ndim, 1)
                dims = tuple(sorted({d % nd for d in ((dim,) if isinstance(dim, int)
                                                      else tuple(dim))}))
            record(NormBackward1, out, (self,), (pv, dims, keepdim), (self, out))
        return out
    norm.__name__ = name
    norm.__doc__ = raw.__doc__
    norm.__wrapped__ = raw
    return norm


# ------------------------------------------------------------------ composed gradients
# Ops whose C kernel has no backward node: with grad needed, the result is the same formula
# written with differentiable ops (the kernel still runs first, so argument errors are its).


def _comp_lerp(input, end, weight):
    return input + weight * (end - input)


def _comp_addcmul(input, tensor1, tensor2, *, value=1):
    return input + value * (tensor1 * tensor2)


def _comp_addcdiv(input, tensor1, tensor2, *, value=1):
    return input + value * (tensor1 / tensor2)


def _comp_dot(input, other):
    return (input * other).sum()


_COMPOSED = {"lerp": _comp_lerp, "addcmul": _comp_addcmul, "addcdiv": _comp_addcdiv,
             "dot": _comp_dot}


def _needs_grad(args, kw):
    for a in args:
        if isinstance(a, _TB) and a.requires_grad:
            return True
    for a in kw.values():
        if isinstance(a, _TB) and a.requires_grad:
            return True
    return False


def _composed(raw, comp, name):
    def fn(*args, **kw):
        out = raw(*args, **kw)
        if _state.enabled and _needs_grad(args, kw):
            return comp(*args, **kw)
        return out
    fn.__name__ = name
    fn.__doc__ = raw.__doc__
    fn.__wrapped__ = raw
    return fn


def _remainder(raw, name, reverse=False):
    """a mod b keeps the kernel's exact value; its gradient is that of a - floor(a / b) * b
    (1 for a, -floor(a / b) for b), added as a zero-valued differentiable term."""
    def fn(a, b):
        out = raw(a, b)
        if not (_state.enabled and _needs_grad((a, b), {})):
            return out
        x, y = (b, a) if reverse else (a, b)
        q = (x // y).detach()  # one of them is a tensor that requires grad
        lin = (x if isinstance(x, _TB) and x.requires_grad else 0.0) - q * (
            y if isinstance(y, _TB) and y.requires_grad else 0.0)
        return out + (lin - lin.detach())
    fn.__name__ = name
    fn.__wrapped__ = raw
    return fn


_BINARY = {
    # name: (recorder, reverse)
    "add": (_rec_add, False), "__add__": (_rec_add, False), "__radd__": (_rec_add, True),
    "sub": (_rec_sub, False), "__sub__": (_rec_sub, False), "subtract": (_rec_sub, False),
    "__rsub__": (_rec_rsub, True),
    "mul": (_rec_mul, False), "__mul__": (_rec_mul, False), "__rmul__": (_rec_mul, True),
    "multiply": (_rec_mul, False),
    "div": (_rec_div, False), "divide": (_rec_div, False), "true_divide": (_rec_div, False),
    "__truediv__": (_rec_div, False), "__rtruediv__": (_rec_div, True),
    "pow": (_rec_pow, False), "__pow__": (_rec_pow, False), "__rpow__": (_rec_pow, True),
    "matmul": (_rec_matmul, False), "__matmul__": (_rec_matmul, False),
    "__rmatmul__": (_rec_matmul, True), "mm": (_rec_matmul, False),
    "bmm": (_rec_matmul, False),
}


def build(methods, functions) -> None:
    """Fill ``methods``/``functions`` (name -> differentiable callable) from the raw tables."""
    for name, (rec, reverse) in _BINARY.items():
        if name in c.RAW_M:
            methods[name] = _binary_method(c.RAW_M[name], rec, reverse, name)
        if name in c.RAW_F and not name.startswith("__"):
            functions[name] = _binary_function(c.RAW_F[name], rec, name)
    for name, (cls, saves) in _UNARY.items():
        if name in c.RAW_M:
            methods[name] = _unary(c.RAW_M[name], cls, saves, name)
        if name in c.RAW_F and not name.startswith("__"):
            functions[name] = _unary(c.RAW_F[name], cls, saves, name)
    for name, comp in _COMPOSED.items():
        if name in c.RAW_M:
            methods[name] = _composed(c.RAW_M[name], comp, name)
        if name in c.RAW_F:
            functions[name] = _composed(c.RAW_F[name], comp, name)
    for name, rev in (("remainder", False), ("__mod__", False), ("__rmod__", True)):
        if name in c.RAW_M:
            methods[name] = _remainder(c.RAW_M[name], name, rev)
    if "remainder" in c.RAW_F:
        functions["remainder"] = _remainder(c.RAW_F["remainder"], "remainder")
    if "norm" in c.RAW_M:
        methods["norm"] = _norm(c.RAW_M["norm"], "norm")
    if "norm" in c.RAW_F:
        functions["norm"] = _norm(c.RAW_F["norm"], "norm")
    for name in ("gelu",):
        if name in c.RAW_M:
            methods[name] = _gelu(c.RAW_M[name], name)
        if name in c.RAW_F:
            functions[name] = _gelu(c.RAW_F[name], name)
    for name, mean in (("sum", False), ("mean", True)):
        if name in c.RAW_M:
            methods[name] = _reduce(c.RAW_M[name], mean, name)
        if name in c.RAW_F:
            functions[name] = _reduce(c.RAW_F[name], mean, name)
    for name in ("cat", "concat", "concatenate"):
        if name in c.RAW_F:
            functions[name] = _wrap_cat(c.RAW_F[name])
    if "stack" in c.RAW_F:
        functions["stack"] = _wrap_stack(c.RAW_F["stack"])
    if "matmul" in c.RAW_M:
        functions["linear"] = linear
