"""Indexing, selection, sorting, scans and integer sampling: torch's Python signatures over
the C kernels.

gather / scatter / scatter_add / index_select / index_put_ / nonzero and the tensor and
boolean indices of ``__getitem__``/``__setitem__`` run on csrc/ops/index*.c, index.cu;
sort / topk on csrc/ops/sort*.c, sort.cu; cumsum and multinomial's sampler on
csrc/ops/scan*.c, scan.cu.  argmax/argmin reuse the max/min reduction, masked_fill / tril /
triu the elementwise ``where``, chunk / split are narrow() views, randint / randperm /
multinomial draw from the Philox generator.  Argument errors follow torch's types and
messages.  Nothing here loops over elements in Python.
"""
import builtins as _builtins
import math as _math

from .. import _C
from .creation import arange
from .reduce import return_types

__all__ = ["gather", "scatter", "scatter_add", "index_select", "index_put", "masked_fill",
           "nonzero", "argwhere", "where", "argmax", "argmin", "topk", "sort", "argsort",
           "unique", "cumsum", "chunk", "split", "narrow", "tril", "triu", "randint", "randperm",
           "multinomial"]

_TB = _C.TensorBase
_c_where = dict(_C._ew_functions)["where"]


def _check_int(value, fname, argname, pos):
    if isinstance(value, _builtins.bool) or not isinstance(value, int):
        if hasattr(value, "__index__") and not isinstance(value, (_builtins.bool, float)):
            return value.__index__()
        raise TypeError(f"{fname}(): argument '{argname}' (position {pos}) must be int, not "
                        f"{type(value).__name__}")
    return value


def _check_tensor(value, fname, argname, pos):
    if not isinstance(value, _TB):
        raise TypeError(f"{fname}(): argument '{argname}' (position {pos}) must be Tensor, not "
                        f"{type(value).__name__}")


# ------------------------------------------------------------------ gather / scatter


def gather(input, dim, index, *, sparse_grad=False):
    """out[i][j][k] = input[i][index[i][j][k]][k] (dim=1): index is int64 with input's rank,
    no larger than input apart from ``dim``."""
    return _C._gather(input, dim, index)


def _scatter_src(fname, src, value):
    if src is None and value is None:
        raise TypeError(f"{fname}() missing required argument 'src' (or 'value')")
    if src is not None and value is not None:
        raise TypeError(f"{fname}() got both 'src' and 'value'")
    return src if src is not None else value


def _reduce_mode(fname, reduce):
    if reduce is None:
        return False
    if reduce in ("add", "sum"):
        return True
    raise RuntimeError(f"{fname}(): reduce={reduce!r} is not supported by shardopt (use "
                       "reduce='add' or None; scatter_reduce is not implemented)")


def _accumulated_src(self, index, src, acc):
    # the accumulating kernel takes a tensor src: a number becomes one of index's shape
    if acc and not isinstance(src, _TB) and isinstance(index, _TB):
        return _C.empty(index._shape, self.dtype, self.device).fill_(src)
    return src


def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
    """In place: self[i][index[i][j]] = src[i][j] (dim=1); src may be a number (``value``).
    ``reduce='add'`` accumulates (as scatter_add_)."""
    _check_tensor(self, "scatter_", "input", 1)
    acc = _reduce_mode("scatter_", reduce)
    src = _accumulated_src(self, index, _scatter_src("scatter_", src, value), acc)
    return _C._scatter_(self, dim, index, src, acc)


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """Out-of-place scatter_: a copy of input with ``src`` (tensor or number) written at
    ``index`` along ``dim``."""
    _check_tensor(input, "scatter", "input", 1)
    src = _scatter_src("scatter", src, value)
    acc = _reduce_mode("scatter", reduce)
    _check_tensor(index, "scatter", "index", 3)
    return _C._scatter_(input.clone(), dim, index, _accumulated_src(input, index, src, acc), acc)


def scatter_add_(self, dim, index, src):
    """In place: self[i][index[i][j]] += src[i][j] (dim=1); duplicates all accumulate."""
    _check_tensor(self, "scatter_add_", "input", 1)
    return _C._scatter_(self, dim, index, src, True)


def scatter_add(input, dim, index, src):
    """Out-of-place scatter_add_."""
    _check_tensor(input, "scatter_add", "input", 1)
    _check_tensor(index, "scatter_add", "index", 3)
    if not isinstance(src, _TB):
        raise TypeError(f"scatter_add(): argument 'src' (position 3) must be Tensor, not "
                        f"{type(src).__name__}")
    return _C._scatter_(input.clone(), dim, index, src, True)


def index_select(input, dim, index):
    """The entries of input at the positions ``index`` (a vector, int32/int64) along dim."""
    return _C._index_select(input, dim, index)


def _indices_tuple(indices, fname):
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"{fname}(): argument 'indices' must be tuple of Tensors, not "
                        f"{type(indices).__name__}")
    out = []
    for i, t in enumerate(indices):
        if t is None:
            out.append(slice(None))
        elif isinstance(t, _TB):
            out.append(t)
        else:
            raise TypeError(f"{fname}(): argument 'indices' must be tuple of Tensors, but found "
                            f"element of type {type(t).__name__} at pos {i}")
    return tuple(out)


def index_put_(self, indices, values, accumulate=False):
    """self[indices] = values (``accumulate``: +=, duplicates summed); indices is a tuple of
    index tensors for the leading dims."""
    _check_tensor(self, "index_put_", "input", 1)
    return _C._index_put_(self, _indices_tuple(indices, "index_put_"), values, accumulate)


def index_put(input, indices, values, accumulate=False):
    """Out-of-place index_put_."""
    _check_tensor(input, "index_put", "input", 1)
    return _C._index_put_(input.clone(), _indices_tuple(indices, "index_put"), values, accumulate)


# ------------------------------------------------------------------ masks and where


def _fill_value(input, value, fname):
    if isinstance(value, _TB):
        if value.ndim != 0:
            raise RuntimeError(f"{fname} only supports a 0-dimensional value tensor, but got "
                               f"tensor with {value.ndim} dimension(s).")
        return value._convert(input.dtype, input.device)
    if isinstance(value, (int, float, _builtins.bool)):
        return _C.empty((), input.dtype, input.device).fill_(value)
    raise TypeError(f"{fname}(): argument 'value' must be Number or Tensor, not "
                    f"{type(value).__name__}")


def _check_mask(mask, fname):
    if not isinstance(mask, _TB):
        raise TypeError(f"{fname}(): argument 'mask' (position 1) must be Tensor, not "
                        f"{type(mask).__name__}")
    if mask.dtype != _C.bool:
        raise RuntimeError(f"{fname} only supports boolean masks, but got mask with dtype "
                           f"{_CPP_NAMES.get(mask.dtype, str(mask.dtype))}")


_CPP_NAMES = {_C.int64: "long int", _C.int32: "int", _C.float32: "float", _C.float64: "double",
              _C.float16: "c10::Half", _C.bfloat16: "c10::BFloat16"}


def masked_fill(input, mask, value):
    """input with ``value`` (a number or 0-d tensor) where ``mask`` (bool, broadcastable) is
    True."""
    _check_tensor(input, "masked_fill", "input", 1)
    _check_mask(mask, "masked_fill_")
    _broadcast_shape(mask._shape, input._shape)
    return _c_where(mask, _fill_value(input, value, "masked_fill_"), input)


def _broadcast_shape(a, b):
    """NumPy broadcast of two shapes, torch's message when they do not broadcast."""
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y and x != 1 and y != 1:
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b "
                               f"({y}) at non-singleton dimension {i}")
        out.append(y if x == 1 else x)
    return tuple(out)


def masked_fill_(self, mask, value):
    """In place masked_fill (mask broadcastable to self)."""
    _check_mask(mask, "masked_fill_")
    shape = _broadcast_shape(mask._shape, self._shape)
    if shape != tuple(self._shape):
        raise RuntimeError(f"output with shape {list(self._shape)} doesn't match the broadcast "
                           f"shape {list(shape)}")
    v = _fill_value(self, value, "masked_fill_")
    return self.copy_(_c_where(mask, v, self))


def nonzero(input, *, as_tuple=False):
    """Coordinates of the non-zero elements: an (n, ndim) int64 tensor in C order, or with
    ``as_tuple`` one index tensor per dim (what ``where(condition)`` returns)."""
    nz = _C._nonzero(input)
    if not as_tuple:
        return nz
    if input.ndim == 0:  # torch: one index tensor of 0s, one per non-zero (0 or 1)
        return (_C.empty((nz.shape[0],), _C.int64, nz.device).zero_(),)
    return tuple(nz.select(1, d) for d in range(input.ndim))


def argwhere(input):
    """nonzero(input) as an (n, ndim) tensor."""
    return _C._nonzero(input)


def where(condition, input=None, other=None, *, out=None):
    """where(condition, input, other): elementwise choice (numbers allowed for input/other);
    where(condition): the tuple of index tensors of nonzero(condition, as_tuple=True)."""
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    if input is None or other is None:
        raise TypeError("where() takes 1 or 3 arguments: where(condition) or "
                        "where(condition, input, other)")
    if out is not None:
        return _c_where(condition, input, other, out=out)
    return _c_where(condition, input, other)


def _where_method(self, condition, other):
    """Tensor.where(condition, y): self where condition else y."""
    return _c_where(condition, self, other)


# ------------------------------------------------------------------ argmax / sort / topk


def _arg_extreme(raw, fname, input, dim, keepdim):
    _check_tensor(input, fname, "input", 1)
    if dim is None:
        if input.numel() == 0:
            raise IndexError(f"{fname}(): Expected reduction dim to be specified for "
                             "input.numel() == 0.")
        flat = input.reshape(-1)
        idx = raw(flat, 0, False)[1]
        if keepdim:
            idx = idx.reshape((1,) * input.ndim)
        return idx
    return raw(input, _check_int(dim, fname, "dim", 2), keepdim)[1]


def argmax(input, dim=None, keepdim=False):
    """Index of the first maximum (NaN counts as the maximum), over all elements
    (flattened) or along ``dim``."""
    return _arg_extreme(_C._max, "argmax", input, dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    """Index of the first minimum (NaN counts as the minimum), over all elements
    (flattened) or along ``dim``."""
    return _arg_extreme(_C._min, "argmin", input, dim, keepdim)


def sort(input, dim=-1, descending=False, stable=False):
    """(values, indices) sorted along ``dim``; always stable (equal values keep their
    order), NaN sorts as the largest value."""
    _check_tensor(input, "sort", "input", 1)
    return return_types.sort(*_C._sort(input, _check_int(dim, "sort", "dim", 2),
                                       _builtins.bool(descending)))


def argsort(input, dim=-1, descending=False, stable=False):
    """The indices of sort()."""
    return sort(input, dim, descending, stable).indices


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values of ``input`` (flattened), ascending (also with ``sorted=False``:
    torch's CPU kernel sorts too); with ``return_inverse`` also each element's index into
    them (input's shape), with ``return_counts`` each value's number of occurrences.
    Built on the stable sort: a value starts where it differs from its predecessor."""
    _check_tensor(input, "unique", "input", 1)
    if dim is not None:
        raise NotImplementedError("unique(): dim= (unique slices along a dimension) is not "
                                  "supported by shardopt; call it without dim")
    from .reduce import cat  # noqa: PLC0415 (reduce and indexing import each other)
    flat = input.reshape(-1)
    n = flat.numel()
    vals, order = _C._sort(flat, 0, False)
    head = _C.empty((_builtins.min(n, 1),), _C.bool, flat.device).fill_(True)
    starts = cat([head, vals.narrow(0, 1, n - 1) != vals.narrow(0, 0, n - 1)]) if n > 1 \
        else head
    out = vals[starts]
    if not (return_inverse or return_counts):
        return out
    res = (out,)
    if return_inverse:
        pos = _C._cumsum(starts, 0, _C.int64) - 1
        inverse = _C.empty((n,), _C.int64, flat.device)
        if n:
            inverse.index_put_((order,), pos)
        res += (inverse.reshape(tuple(input.shape)),)
    if return_counts:
        first = _C._nonzero(starts).reshape(-1)
        end = _C.empty((1,), _C.int64, flat.device).fill_(n)
        res += (cat([first.narrow(0, 1, first.numel() - 1), end]) - first
                if first.numel() else first,)
    return res


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The ``k`` largest (or smallest) entries along ``dim`` and their indices, sorted
    (also when ``sorted=False``, which torch allows to be in any order)."""
    _check_tensor(input, "topk", "input", 1)
    k = _check_int(k, "topk", "k", 2)
    return return_types.topk(*_C._topk(input, k, _check_int(dim, "topk", "dim", 3),
                                       _builtins.bool(largest)))


def cumsum(input, dim, *, dtype=None):
    """Running sum along ``dim``; integer and bool inputs give int64 unless ``dtype``."""
    return _C._cumsum(input, dim, dtype)


def cumsum_(self, dim, *, dtype=None):
    """In place cumsum (the result is cast back to self's dtype)."""
    return self.copy_(_C._cumsum(self, dim, dtype))


# ------------------------------------------------------------------ chunk / split


def _wrap_dim(dim, nd):
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}], "
                         f"but got {dim})")
    return dim + nd if dim < 0 else dim


def split(tensor, split_size_or_sections, dim=0):
    """Views of ``tensor`` along ``dim``: pieces of ``split_size`` (the last may be smaller)
    or of the listed sizes."""
    _check_tensor(tensor, "split", "input", 1)
    dim = _check_int(dim, "split", "dim", 3)
    nd = tensor.ndim
    if nd == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    dim = _wrap_dim(dim, nd)
    size = tensor.shape[dim]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [_check_int(s, "split_with_sizes", "split_sizes", 2)
                 for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or _builtins.sum(sizes) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} "
                               f"(input tensor's size at dimension {dim}), but got "
                               f"split_sizes={sizes}")
    else:
        step = _check_int(split_size_or_sections, "split", "split_size", 2)
        if step < 0:
            raise RuntimeError(f"split expects split_size be non-negative, but got "
                               f"split_size={step}")
        if step == 0:
            if size != 0:
                raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got "
                                   f"dimension size of {size}")
            return (tensor.narrow(dim, 0, 0),)
        sizes = [step] * (size // step) + ([size % step] if size % step else [])
        if not sizes:
            sizes = [0]
    out = []
    start = 0
    for s in sizes:
        out.append(tensor.narrow(dim, start, s))
        start += s
    return tuple(out)


def narrow(input, dim, start, length):
    """The view of ``input`` holding ``length`` elements from ``start`` along ``dim``
    (torch.narrow; ``start`` may be negative)."""
    _check_tensor(input, "narrow", "input", 1)
    return input.narrow(dim, start, length)


def chunk(input, chunks, dim=0):
    """Split into ``chunks`` views of ceil(size / chunks) elements along ``dim`` (fewer when
    the size runs out first)."""
    _check_tensor(input, "chunk", "input", 1)
    chunks = _check_int(chunks, "chunk", "chunks", 2)
    if input.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    dim = _wrap_dim(_check_int(dim, "chunk", "dim", 3), input.ndim)
    size = input.shape[dim]
    if size == 0:
        return tuple(input.narrow(dim, 0, 0) for _ in range(chunks))
    return split(input, -(-size // chunks), dim)


# ------------------------------------------------------------------ tril / triu


def _tri_mask(input, diagonal, lower, fname):
    _check_tensor(input, fname, "input", 1)
    diagonal = _check_int(diagonal, fname, "diagonal", 2)
    if input.ndim < 2:
        raise RuntimeError(f"{fname}: input tensor must have at least 2 dimensions")
    n, m = input.shape[-2], input.shape[-1]
    rows = arange(n, device=input.device).reshape(n, 1)
    cols = arange(m, device=input.device)
    off = cols - rows  # (n, m): j - i
    return (off <= diagonal) if lower else (off >= diagonal)


def tril(input, diagonal=0):
    """The lower triangle (j - i <= diagonal) of the last two dims; the rest zero."""
    keep = _tri_mask(input, diagonal, True, "tril")
    return _c_where(keep, input, _C.empty((), input.dtype, input.device).zero_())


def triu(input, diagonal=0):
    """The upper triangle (j - i >= diagonal) of the last two dims; the rest zero."""
    keep = _tri_mask(input, diagonal, False, "triu")
    return _c_where(keep, input, _C.empty((), input.dtype, input.device).zero_())


def tril_(self, diagonal=0):
    return self.copy_(tril(self, diagonal))


def triu_(self, diagonal=0):
    return self.copy_(triu(self, diagonal))


# ------------------------------------------------------------------ random integers


def _size_tuple(size, fname):
    if isinstance(size, int) and not isinstance(size, _builtins.bool):
        return (size,)
    if isinstance(size, (tuple, list)):
        return tuple(_check_int(s, fname, "size", 3) for s in size)
    raise TypeError(f"{fname}(): argument 'size' must be tuple of ints, not {type(size).__name__}")


def _uniform01(shape, device, generator):
    u = _C.empty(shape, _C.float64, device)
    return _C._uniform_(u, 0.0, 1.0, generator)


def randint(*args, size=None, generator=None, dtype=None, device=None, requires_grad=False,
            layout=None, pin_memory=False, out=None):
    """randint(high, size) / randint(low=0, high, size): integers uniform in [low, high)
    (int64 unless ``dtype``), from a float64 Philox draw scaled to the range (exactly
    uniform up to 2**53 - 1 values)."""
    args = list(args)
    if size is None and args and isinstance(args[-1], (tuple, list)):
        size = args.pop()
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise TypeError("randint() expects randint(high, size) or randint(low, high, size)")
    low = _check_int(low, "randint", "low", 1)
    high = _check_int(high, "randint", "high", 2)
    shape = _size_tuple(size, "randint")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= "
                           f"to={high}")
    span = high - low
    if span > 2 ** 53:
        raise RuntimeError(f"randint(): a range of {span} values is beyond the 2**53 this "
                           "implementation draws exactly")
    u = _uniform01(shape, device, generator)
    r = (u * float(span))._convert(_C.int64, None).clamp_max_(span - 1)
    if low:
        r = r + low
    if dtype is not None and dtype != _C.int64:
        r = r._convert(dtype, None)
    if requires_grad:
        r.requires_grad_(True)
    return r


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False, layout=None,
             pin_memory=False, out=None):
    """A random permutation of 0..n-1 (int64 unless ``dtype``): argsort of n float64 Philox
    draws (a stable sort, so even equal draws give a permutation)."""
    n = _check_int(n, "randperm", "n", 1)
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    keys = _uniform01((n,), device, generator)
    if keys.device.type != "cpu":
        # one long row: the GPU sort runs a row per thread, so sort the drawn keys on the
        # host (the same total order) and send the permutation back
        p = _C._sort(keys._convert(None, "cpu"), 0, False)[1]._convert(None, keys.device)
    else:
        p = _C._sort(keys, 0, False)[1]
    if dtype is not None and dtype != _C.int64:
        p = p._convert(dtype, None)
    if requires_grad:
        p.requires_grad_(True)
    return p


_DTYPE_NAMES = {_C.int64: "Long", _C.int32: "Int", _C.bool: "Bool"}


def multinomial(input, num_samples, replacement=False, *, generator=None, out=None):
    """Draw category indices from the rows of ``input`` (non-negative weights, 1-D or 2-D).
    With replacement: inverse-CDF search of uniform draws on the row cumsum; without: the
    k smallest of Exp(1) / p (the exponential race), which samples without replacement with
    probabilities proportional to p."""
    _check_tensor(input, "multinomial", "input", 1)
    num_samples = _check_int(num_samples, "multinomial", "num_samples", 2)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{_DTYPE_NAMES.get(input.dtype, str(input.dtype))}")
    if input.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    ncat = input.shape[-1]
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    if not replacement and num_samples > ncat:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    p = input.reshape(1, ncat) if input.ndim == 1 else input
    rows = p.shape[0]
    if rows == 0 or ncat == 0:
        if ncat == 0:
            raise RuntimeError("multinomial(): the input must have at least one category")
        shape = (rows, num_samples)
        return _C.empty(shape, _C.int64, input.device)
    p = p._convert(_C.float64, None) if p.dtype != _C.float64 else p
    lo, hi = float(_C._min(p, None, False).item()), float(_C._max(p, None, False).item())
    if not (lo >= 0.0) or _math.isinf(hi) or _math.isnan(hi):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if not float(_C._min(_C._sum(p, 1, False, None), None, False).item()) > 0.0:
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if replacement:
        cdf = _C._cumsum(p, 1, None)
        u = _uniform01((rows, num_samples), p.device, generator)
        res = _C._cdf_search(cdf.contiguous(), u)
    else:
        u = _uniform01((rows, ncat), p.device, generator)
        keys = -(u.log()) / p
        res = _C._topk(keys, num_samples, 1, False)[1]
    return res.reshape(num_samples) if input.ndim == 1 else res


# ------------------------------------------------------------------ Tensor methods


def _index_put_method(self, indices, values, accumulate=False):
    return index_put_(self, indices, values, accumulate)


TENSOR_METHODS = {
    "gather": gather,
    "scatter": scatter,
    "scatter_": scatter_,
    "scatter_add": scatter_add,
    "scatter_add_": scatter_add_,
    "index_select": index_select,
    "index_put_": _index_put_method,
    "index_put": index_put,
    "masked_fill": masked_fill,
    "masked_fill_": masked_fill_,
    "nonzero": nonzero,
    "argwhere": argwhere,
    "where": _where_method,
    "argmax": argmax,
    "argmin": argmin,
    "sort": sort,
    "argsort": argsort,
    "unique": unique,
    "topk": topk,
    "cumsum": cumsum,
    "cumsum_": cumsum_,
    "split": split,
    "chunk": chunk,
    "tril": tril,
    "triu": triu,
    "tril_": tril_,
    "triu_": triu_,
    "multinomial": multinomial,
}
