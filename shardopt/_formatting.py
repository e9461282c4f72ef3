"""Tensor.__repr__ in torch's format (a port of the rules in torch/_tensor_str.py).

Floats print with 4 decimals, or as integers with a trailing '.' when every finite value is
integral, or in scientific notation when the magnitudes span more than 1000x, exceed 1e8 or
go below 1e-4; columns share one width; more than ``threshold`` elements are summarised with
'...' keeping ``edgeitems`` at each end of every dimension.  Suffixes: ``device=`` for
non-CPU tensors, ``dtype=`` unless the dtype is the default float dtype, int64 or bool,
``size=`` for empty tensors that are not 1-D, and ``grad_fn=<...>`` / ``requires_grad=True``.

Only the printed elements are copied to the host (CUDA tensors) — the summarised parts are
gathered through views first.
"""
import math
from itertools import chain

import numpy as np

from . import _C


class _PrintOptions:
    precision = 4
    threshold = 1000
    edgeitems = 3
    linewidth = 80
    sci_mode = None


PRINT_OPTS = _PrintOptions()


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """torch.set_printoptions: profile is 'default', 'short' or 'full'."""
    if profile == "default":
        PRINT_OPTS.precision, PRINT_OPTS.threshold = 4, 1000
        PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = 3, 80
    elif profile == "short":
        PRINT_OPTS.precision, PRINT_OPTS.threshold = 2, 1000
        PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = 2, 80
    elif profile == "full":
        PRINT_OPTS.precision, PRINT_OPTS.threshold = 4, math.inf
        PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = 3, 80
    elif profile is not None:
        raise ValueError(f"profile must be 'default', 'short' or 'full', got {profile!r}")
    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    PRINT_OPTS.sci_mode = sci_mode


def _host(t):
    """NumPy copy/view of t's values on the host; float16/bfloat16 printed as float32."""
    if t.dtype in (_C.float16, _C.bfloat16):
        t = t._convert(_C.float32, "cpu")
    elif t.device.type != "cpu":
        t = t._convert(None, "cpu")
    return t.numpy(force=True)


def _gather(t, summarize, edge):
    """The elements that will be printed, as an ndarray (each summarised dim keeps 2*edge)."""
    if t.dim() == 0 or not summarize:
        return _host(t)
    n = t.shape[0]
    if n > 2 * edge:
        if t.dim() == 1:
            return np.concatenate([_host(t[:edge]), _host(t[n - edge:])])
        return np.stack([_gather(t[i], summarize, edge)
                         for i in chain(range(edge), range(n - edge, n))])
    if t.dim() == 1:
        return _host(t)
    return np.stack([_gather(t[i], summarize, edge) for i in range(n)])


class _Formatter:
    def __init__(self, values, floating):
        self.floating_dtype = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        p = PRINT_OPTS.precision
        values = values.reshape(-1)
        if not floating:
            if values.size:
                for v in (values.min().item(), values.max().item()):
                    self.max_width = max(self.max_width, len(f"{v}"))
        else:
            nz = values[np.isfinite(values) & (values != 0)]
            if nz.size == 0:
                return
            absv = np.abs(nz).astype(np.float64)
            vmin, vmax = absv.min(), absv.max()
            nz_list = nz.tolist()
            if np.any(nz != np.ceil(nz)):
                self.int_mode = False
            if self.int_mode:
                if vmax / vmin > 1000.0 or vmax > 1.0e8:
                    self.sci_mode = True
                    width = max(len(f"{v:.{p}e}") for v in nz_list)
                else:
                    width = max(len(f"{v:.0f}") + 1 for v in nz_list)
            else:
                if vmax / vmin > 1000.0 or vmax > 1.0e8 or vmin < 1.0e-4:
                    self.sci_mode = True
                    width = max(len(f"{v:.{p}e}") for v in nz_list)
                else:
                    width = max(len(f"{v:.{p}f}") for v in nz_list)
            self.max_width = max(self.max_width, width)
        if PRINT_OPTS.sci_mode is not None:
            self.sci_mode = PRINT_OPTS.sci_mode

    def width(self):
        return self.max_width

    def format(self, value):
        p = PRINT_OPTS.precision
        if self.floating_dtype:
            if self.sci_mode:
                ret = f"{value:{self.max_width}.{p}e}"
            elif self.int_mode:
                ret = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    ret += "."
            else:
                ret = f"{value:.{p}f}"
        else:
            ret = f"{value}"
        return (self.max_width - len(ret)) * " " + ret


def _vector_str(arr, size, indent, summarize, fmt):
    edge = PRINT_OPTS.edgeitems
    element_length = fmt.width() + 2
    elements_per_line = max(1, int(math.floor((PRINT_OPTS.linewidth - indent) / element_length)))
    if summarize and not edge:
        data = ["..."]
    elif summarize and size > 2 * edge:
        vals = arr.tolist()
        data = ([fmt.format(v) for v in vals[:edge]] + [" ..."]
                + [fmt.format(v) for v in vals[edge:]])
    else:
        data = [fmt.format(v) for v in arr.tolist()]
    lines = [", ".join(data[i:i + elements_per_line])
             for i in range(0, len(data), elements_per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _tensor_str_with_formatter(arr, shape, indent, summarize, fmt):
    dim = len(shape)
    if dim == 0:
        return fmt.format(arr.item())
    if dim == 1:
        return _vector_str(arr, shape[0], indent, summarize, fmt)
    edge = PRINT_OPTS.edgeitems
    if summarize and shape[0] > 2 * edge:
        slices = ([_tensor_str_with_formatter(arr[i], shape[1:], indent + 1, summarize, fmt)
                   for i in range(edge)]
                  + ["..."]
                  + [_tensor_str_with_formatter(arr[i], shape[1:], indent + 1, summarize, fmt)
                     for i in range(edge, 2 * edge)])
    else:
        slices = [_tensor_str_with_formatter(arr[i], shape[1:], indent + 1, summarize, fmt)
                  for i in range(arr.shape[0])]
    tensor_str = ("," + "\n" * (dim - 1) + " " * (indent + 1)).join(slices)
    return "[" + tensor_str + "]"


class _ComplexFormatter:
    """torch's complex layout: the real and imaginary parts each get their own float
    formatter, joined as ``re+imj`` (the imaginary part's sign replaces the '+')."""

    def __init__(self, arr):
        self.re = _Formatter(np.ascontiguousarray(arr.real), True)
        self.im = _Formatter(np.ascontiguousarray(arr.imag), True)

    def width(self):
        return self.re.width() + self.im.width() + 1  # + the 'j'

    def format(self, value):
        value = complex(value)
        real_str = self.re.format(value.real)
        imag_str = (self.im.format(value.imag) + "j").lstrip()
        if imag_str[0] in "+-":
            return real_str + imag_str
        return real_str + "+" + imag_str


def _tensor_str(t, indent):
    if t.numel() == 0:
        return "[]"
    summarize = t.numel() > PRINT_OPTS.threshold
    arr = _gather(t, summarize, PRINT_OPTS.edgeitems)
    if t.dtype.is_complex:
        fmt = _ComplexFormatter(arr)
        return _tensor_str_with_formatter(arr, tuple(t._shape), indent, summarize, fmt)
    fmt = _Formatter(arr, t.dtype.is_floating_point)
    return _tensor_str_with_formatter(arr, tuple(t._shape), indent, summarize, fmt)


def _add_suffixes(tensor_str, suffixes, indent, force_newline):
    tensor_strs = [tensor_str]
    last_line_len = len(tensor_str) - tensor_str.rfind("\n") + 1
    for suffix in suffixes:
        suffix_len = len(suffix)
        if force_newline or last_line_len + suffix_len + 2 > PRINT_OPTS.linewidth:
            tensor_strs.append(",\n" + " " * indent + suffix)
            last_line_len = indent + suffix_len
            force_newline = False
        else:
            tensor_strs.append(", " + suffix)
            last_line_len += suffix_len + 2
    tensor_strs.append(")")
    return "".join(tensor_strs)


def _is_plain(t):
    from ._tensor import Tensor
    cls = type(t)
    return cls is Tensor or (cls.__name__ == "Parameter" and cls.__module__.startswith("shardopt"))


def tensor_repr(self, *, tensor_contents=None):
    from ._ops.creation import get_default_dtype
    prefix = "tensor(" if _is_plain(self) else f"{type(self).__name__}("
    indent = len(prefix)
    suffixes = []
    if self.device.type != "cpu":
        suffixes.append(f"device='{self.device}'")
    default_dtype = get_default_dtype()
    default_complex = _C.complex128 if default_dtype == _C.float64 else _C.complex64
    has_default_dtype = self.dtype in (default_dtype, default_complex, _C.int64, _C.bool)
    if self.is_meta:
        # no data to print: torch shows '...', the size always, and any non-default dtype
        suffixes.append("size=" + str(tuple(self._shape)))
        if self.dtype != default_dtype:
            suffixes.append("dtype=" + str(self.dtype))
        tensor_str = "..."
    elif self.numel() == 0:
        if self.dim() != 1:
            suffixes.append("size=" + str(tuple(self._shape)))
        if self.dtype != default_dtype:
            suffixes.append("dtype=" + str(self.dtype))
        tensor_str = "[]" if tensor_contents is None else tensor_contents
    else:
        if not PRINT_OPTS.edgeitems:
            suffixes.append("size=" + str(tuple(self._shape)))
        if not has_default_dtype:
            suffixes.append("dtype=" + str(self.dtype))
        tensor_str = _tensor_str(self, indent) if tensor_contents is None else tensor_contents
    grad_fn = self.grad_fn
    if grad_fn is not None:
        name = getattr(grad_fn, "_repr_name", None) or type(grad_fn).__name__
        suffixes.append(f"grad_fn=<{name}>")
    elif self.requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + tensor_str, suffixes, indent, force_newline=False)
