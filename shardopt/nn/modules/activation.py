"""Activation modules: GELU, ReLU, Tanh, Sigmoid, SiLU, Softmax, LogSoftmax, and the modules
over nn.functional's other pointwise activations (LeakyReLU, ELU, SELU, CELU, Softplus, Softsign,
Hardtanh, ReLU6, Hardsigmoid, Hardswish, LogSigmoid, Mish)."""
from .. import functional as F
from .module import Module

__all__ = ["GELU", "ReLU", "Tanh", "Sigmoid", "SiLU", "Softmax", "LogSoftmax"]


class GELU(Module):
    """x * Phi(x); approximate='tanh' uses the tanh approximation."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    """max(x, 0)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Tanh(Module):
    """Hyperbolic tangent."""

    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, input):
        return F.sigmoid(input)


class SiLU(Module):
    """x * sigmoid(x).

    Args:
        inplace: do it in place.
    """

    __constants__ = ["inplace"]

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Softmax(Module):
    """softmax along ``dim`` (None: torch's legacy implicit dim, with a warning).

    Args:
        dim: the dim the probabilities sum to 1 over.
    """

    __constants__ = ["dim"]

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log_softmax along ``dim``.

    Args:
        dim: the dim to normalise over.
    """

    __constants__ = ["dim"]

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"


class _Pointwise(Module):
    """A module over one of F's pointwise activations; ``_args`` names its constructor
    arguments in torch's order (they are attributes, as in torch, and show in the repr)."""

    _fn = None
    _args = ()

    def __init__(self, *args, **kwargs):
        super().__init__()
        names = self._args
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes at most {len(names)} arguments")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                                f"'{k}'")
            if k in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument "
                                f"'{k}'")
            values[k] = v
        for k, default in zip(names, self._defaults):
            setattr(self, k, values.get(k, default))

    def forward(self, input):
        return type(self)._fn(input, **{k: getattr(self, k) for k in self._args})

    def extra_repr(self):
        return ", ".join(f"{k}={getattr(self, k)}" for k in self._args
                         if not (k == "inplace" and not getattr(self, k)))


def _pointwise(name, fn, args=(), defaults=(), doc=""):
    return type(name, (_Pointwise,), {"_fn": staticmethod(fn), "_args": tuple(args),
                                      "_defaults": tuple(defaults), "__doc__": doc,
                                      "__module__": __name__})


LeakyReLU = _pointwise("LeakyReLU", F.leaky_relu, ("negative_slope", "inplace"), (0.01, False),
                       "x where x > 0, negative_slope * x elsewhere.")
ELU = _pointwise("ELU", F.elu, ("alpha", "inplace"), (1.0, False),
                 "x where x > 0, alpha * (exp(x) - 1) elsewhere.")
SELU = _pointwise("SELU", F.selu, ("inplace",), (False,), "Scaled ELU (self-normalising).")
CELU = _pointwise("CELU", F.celu, ("alpha", "inplace"), (1.0, False),
                  "max(0, x) + min(0, alpha * (exp(x / alpha) - 1)).")
Softplus = _pointwise("Softplus", F.softplus, ("beta", "threshold"), (1.0, 20.0),
                      "log(1 + exp(beta x)) / beta (linear above threshold).")
Softsign = _pointwise("Softsign", F.softsign, doc="x / (1 + |x|).")
Hardtanh = _pointwise("Hardtanh", F.hardtanh, ("min_val", "max_val", "inplace"),
                      (-1.0, 1.0, False), "x clamped to [min_val, max_val].")
ReLU6 = _pointwise("ReLU6", F.relu6, ("inplace",), (False,), "min(max(x, 0), 6).")
Hardsigmoid = _pointwise("Hardsigmoid", F.hardsigmoid, ("inplace",), (False,),
                         "relu6(x + 3) / 6.")
Hardswish = _pointwise("Hardswish", F.hardswish, ("inplace",), (False,), "x * relu6(x + 3) / 6.")
LogSigmoid = _pointwise("LogSigmoid", F.logsigmoid, doc="log(sigmoid(x)).")
Mish = _pointwise("Mish", F.mish, ("inplace",), (False,), "x * tanh(softplus(x)).")

__all__ += ["LeakyReLU", "ELU", "SELU", "CELU", "Softplus", "Softsign", "Hardtanh", "ReLU6",
            "Hardsigmoid", "Hardswish", "LogSigmoid", "Mish"]

Threshold = _pointwise("Threshold", F.threshold, ("threshold", "value", "inplace"),
                       (None, None, False), "x where x > threshold, else value.")
Hardshrink = _pointwise("Hardshrink", F.hardshrink, ("lambd",), (0.5,),
                        "x where |x| > lambd, else 0.")
Softshrink = _pointwise("Softshrink", F.softshrink, ("lambd",), (0.5,),
                        "Soft thresholding at lambd.")
Hardshrink.extra_repr = Softshrink.extra_repr = lambda self: f"{self.lambd}"  # torch's repr
Tanhshrink = _pointwise("Tanhshrink", F.tanhshrink, doc="x - tanh(x).")
GLU = _pointwise("GLU", F.glu, ("dim",), (-1,), "The gated linear unit a * sigmoid(b).")
Softmin = _pointwise("Softmin", F.softmin, ("dim",), (None,), "softmax(-x) along dim.")


class PReLU(Module):
    """x where x > 0, a * x elsewhere, with a learnable ``a``.

    Args:
        num_parameters: 1, or the channel count (one slope per channel, dim 1).
        init: the slopes' initial value.
    """

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        from ... import _C
        from ..parameter import Parameter
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(_C.empty((num_parameters,), dtype, device).fill_(init))

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


__all__ += ["Threshold", "Hardshrink", "Softshrink", "Tanhshrink", "GLU", "Softmin", "PReLU"]
