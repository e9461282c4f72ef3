"""``F.embedding`` / ``F.embedding_bag`` (``nn.Embedding`` / ``nn.EmbeddingBag``) with a
chunk-sharded weight (torch 2.x chunk_sharding_spec_ops/embedding.py, embedding_bag.py).

Inputs.  Each rank passes its own ids (torch's semantics) and gets the result for its own
ids.  The ranks first exchange their ids (``_per_rank.exchange``); when every rank passed
the same ids the ops run the replicated algorithm below on them directly, otherwise on the
concatenation of all ranks' ids, keeping this rank's rows (``_per_rank.own_rows``, which
also gives the gradient torch's collectives give: the sum of the ranks' losses).

The replicated algorithm (ids and result the same on every rank):
* weight sharded on dim 1 (embedding columns; rank r holds columns [o_r, o_r + n_r) of every
  row): each rank looks the ids up in its columns (and reduces its bags), and an all_gather
  along the last dim assembles the full vectors.  Backward: each rank keeps its columns'
  slice of the gradient.
* weight sharded on dim 0 (rows; rank r holds ids [o_r, o_r + n_r)): each rank looks up
  the ids in its range, zeroes the others, and an all_reduce (SUM) adds the ranks' parts;
  bags in mode "max" take each rank's max over its ids and an all_reduce (MAX), the
  gradient going to the rank that held the max.  Backward: the gradient passes through.
With the same ids and the same loss on every rank, the local shards get exactly the
unsharded op's gradient.

``padding_idx`` entries get no gradient (and are left out of bags and of "mean"'s count);
``max_norm`` renormalises, in place and before the lookup, the rows that any rank's input
references -- for column shards the row norm is summed over the ranks first.

The lookups are index_select / scatter_add on the local shard, so autograd carries the
gradient into the local shard tensor; the id bookkeeping (which rank holds an id, bag
membership) is a few small NumPy arrays built from the input on the host, as torch's
validation already reads the input's min and max.
"""
import numpy as np

from .. import _C
from ._chunk_layout import chunk_layout
from ._per_rank import exchange, own_rows, raise_if_bad
from ._replicated import copy_to_ranks, gather_from_ranks, max_from_ranks, reduce_from_ranks
from ._shard_registry import _sharded_op_impl
from ..distributed import distributed_c10d as dist

__all__ = ["sharded_embedding", "sharded_embedding_bag"]

_EMB_ARGS = ("input", "weight", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq",
             "sparse")
_BAG_ARGS = ("input", "weight", "offsets", "max_norm", "norm_type", "scale_grad_by_freq",
             "mode", "sparse", "per_sample_weights", "include_last_offset", "padding_idx")


def _bind(fname, names, args, kwargs):
    vals = dict(zip(names, args))
    if len(args) > len(names):
        raise TypeError(f"{fname}() takes at most {len(names)} arguments ({len(args)} given)")
    for k, v in (kwargs or {}).items():
        if k not in names:
            raise TypeError(f"{fname}() got an unexpected keyword argument '{k}'")
        if k in vals:
            raise TypeError(f"{fname}() got multiple values for argument '{k}'")
        vals[k] = v
    return vals


def _host_ids(input):
    if input.dtype not in (_C.int64, _C.int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {input.dtype} instead")
    return np.ascontiguousarray(input.detach().cpu().numpy()).astype(np.int64)


def _ids_error(ids, weight):
    """torch's error for ids outside the weight's rows, or None (returned, not raised: the
    ranks' inputs differ, so it is raised on every rank after the exchange)."""
    if ids.size and int(ids.min()) < 0:
        return ValueError("Index out of range in Input %d %d", int(ids.min()), weight.size(1))
    if ids.size and int(ids.max()) >= weight.size(0):
        return ValueError("Index out of range in Input %d %d", int(ids.max()), weight.size(1))
    return None


def _validate_common(fname, input, weight, v):
    """The argument checks that do not depend on the ids' values."""
    from .api import ShardedTensor  # noqa: PLC0415
    from ..sharding_spec import ChunkShardingSpec  # noqa: PLC0415
    if not isinstance(weight, ShardedTensor):
        raise TypeError("weight needs to be ShardedTensor")
    if len(weight.size()) != 2:
        raise ValueError("Weight needs to have exactly 2 dims")
    if v.get("scale_grad_by_freq"):
        raise RuntimeError(f'nn.{fname} weight sharded with flag on "scale_grad_by_freq" not '
                           'supported!')
    if v.get("sparse"):
        raise RuntimeError(f'nn.{fname} weight sharded with flag on "sparse" not supported!')
    max_norm = v.get("max_norm")
    if max_norm and max_norm <= 0.0:
        raise ValueError('"max_norm" must be larger than zero!')
    if not isinstance(weight.sharding_spec(), ChunkShardingSpec):
        raise ValueError("Only ChunkShardingSpec supported for ShardedTensor ops!")
    if len(weight.local_shards()) > 1:
        raise ValueError("Only one local shard supported!")


def _padding_idx(padding_idx, num_embeddings):
    if padding_idx is None:
        return None
    if padding_idx > 0 and padding_idx >= num_embeddings:
        raise AssertionError("Padding_idx must be within num_embeddings")
    if padding_idx < 0:
        if padding_idx < -num_embeddings:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx += num_embeddings
    return padding_idx


def _zeros(shape, dtype, device):
    return _C.empty(tuple(shape), dtype=dtype, device=device).zero_()


def _dev(a, like):
    return _C.from_numpy(np.ascontiguousarray(a)).to(like.device)


def _renorm_(lay, weight, ids, max_norm, norm_type, pg):
    """torch's max_norm: rows referenced by ``ids`` whose p-norm exceeds max_norm are scaled
    to max_norm / (norm + 1e-7), in place, without autograd."""
    from ..autograd.grad_mode import no_grad  # noqa: PLC0415
    p = 2.0 if norm_type is None else float(norm_type)
    rows = np.unique(ids)
    if lay.dim == 0:  # whole rows live on their owner: renorm the local ones
        rows = rows[(rows >= lay.offset) & (rows < lay.offset + lay.size)] - lay.offset
    if lay.local is None or lay.local.numel() == 0 or not len(rows):
        if lay.dim == 1:  # the others sum their column norms: take part with zeros
            psum = _zeros((len(rows),), dtype=weight.dtype, device=weight.device)
            dist.all_reduce(psum, group=pg)
        return
    with no_grad():
        idx = _dev(rows, lay.local)
        sel = lay.local.index_select(0, idx)
        psum = (sel.abs() ** p).sum(1) if p != 1.0 else sel.abs().sum(1)
        if lay.dim == 1:
            psum = psum.contiguous()
            dist.all_reduce(psum, group=pg)
        norm = psum.numpy() ** (1.0 / p) if not psum.is_cuda else psum.cpu().numpy() ** (1.0 / p)
        scale = np.where(norm > max_norm, max_norm / (norm + 1e-7), 1.0)
        lay.local.index_put_((idx,), sel * _dev(scale[:, None].astype(np.float64), sel).to(sel.dtype))


def _local_lookup(lay, weight, ids, keep, pg, keep_value=True):
    """(ids.shape + (local columns,)) rows of the local shard for ``ids``; for row shards,
    ids outside this rank's range give zeros.  ``keep`` (bool array like ids) marks the
    entries that get a gradient; the others (padding_idx) keep the row's value without a
    gradient (embedding) or are zeros (``keep_value=False``: bags leave them out)."""
    width = weight.size(1) if lay.dim == 0 else lay.size
    shape = tuple(ids.shape) + (width,)
    if lay.dim == 0:
        mine = (ids >= lay.offset) & (ids < lay.offset + lay.size)
        local_ids = np.where(mine, ids - lay.offset, 0)
    else:
        mine = np.ones(ids.shape, dtype=bool)
        local_ids = ids
    if lay.local is None or lay.local.numel() == 0 or not ids.size:
        out = _zeros(shape, dtype=weight.dtype, device=weight.device)
        if lay.local is not None and lay.local.requires_grad:
            # keep the (empty) shard in the graph so this rank's backward runs the same
            # collectives as the others' and the shard gets its (zero) gradient
            out = out + lay.local.sum() * 0
        return out, mine
    w = lay.local
    rows = w.index_select(0, _dev(local_ids.reshape(-1), w)).reshape(shape)
    grad_mask = (mine & keep).astype(np.float64)[..., None]
    out = rows * _dev(grad_mask, w).to(w.dtype)
    if keep_value and not keep.all():  # padding entries: the row's value, no gradient
        pad = (mine & ~keep).astype(np.float64)[..., None]
        out = out + rows.detach() * _dev(pad, w).to(w.dtype)
    return out, mine


def _assemble(lay, local, weight, pg, op="sum"):
    if lay.dim == 1:
        return gather_from_ranks(local, lay.sizes, lay.order, local.dim() - 1, pg)
    return max_from_ranks(local, pg) if op == "max" else reduce_from_ranks(local, pg)


def _device(weight, lay):
    return lay.local.device if lay.local is not None else weight.device


def _same_everywhere(shapes, peers, shape, parts):
    return all(tuple(sh) == tuple(shape) and
               all(np.array_equal(p, q) for p, q in zip(theirs, parts))
               for sh, theirs in zip(shapes, peers))


def sharded_embedding(types, args, kwargs, pg):
    """F.embedding with a ShardedTensor weight (see the module docstring)."""
    v = _bind("embedding", _EMB_ARGS, args, kwargs)
    input, weight = v.get("input"), v.get("weight")
    if not isinstance(input, _C.TensorBase):
        raise TypeError("input need to be torch.Tensor")
    ids = _host_ids(input)
    _validate_common("Embedding", input, weight, v)
    lay = chunk_layout(weight, "embedding")
    pad = _padding_idx(v.get("padding_idx"), weight.size(0))
    err = _ids_error(ids, weight)
    flat = ids.reshape(-1)
    bads, shapes, peers = exchange(ids.shape, [flat], err is not None, _device(weight, lay), pg)
    raise_if_bad(bads, err, pg, "embedding")
    same = _same_everywhere(shapes, peers, ids.shape, [flat])
    looked_up = ids if same else np.concatenate([p[0] for p in peers])
    if v.get("max_norm"):
        _renorm_(lay, weight, looked_up, v["max_norm"], v.get("norm_type", 2.0), pg)
    keep = looked_up != pad if pad is not None else np.ones(looked_up.shape, dtype=bool)
    local, _ = _local_lookup(lay, weight, looked_up, keep, pg)
    out = _assemble(lay, local, weight, pg)
    if same:
        return out
    start = sum(p[0].size for p in peers[:lay.rank])
    mine = own_rows(out, start, flat.size, pg)
    return mine.reshape(tuple(ids.shape) + (mine.shape[-1],))


def _bags(ids, offs, include_last_offset):
    """(bag index matrix (B, L), membership mask (B, L), position of each entry in the
    flattened ids, -1 outside a bag) for 2-D ids, or 1-D ids and their offsets."""
    if ids.ndim == 2:
        return ids, np.ones(ids.shape, dtype=bool), np.arange(ids.size).reshape(ids.shape)
    n = ids.shape[0]
    if offs.size and offs[0] != 0:
        raise RuntimeError(f"offsets[0] has to be 0, i.e., the first sequence in the "
                           f"mini-batch has to start from position 0. However, got {offs[0]}")
    if offs.size and int(offs[-1]) > n:
        raise RuntimeError(f"offsets[-1] can not be greater than input's length ({n}), but "
                           f"got offsets[-1] of {offs[-1]}")
    if np.any(np.diff(offs) < 0):
        raise RuntimeError("offsets must be non-decreasing")
    ends = offs[1:] if include_last_offset else np.append(offs[1:], n)
    starts = offs[:-1] if include_last_offset else offs
    lens = ends - starts
    width = int(lens.max()) if lens.size else 0
    mat = np.zeros((len(starts), width), dtype=np.int64)
    mask = np.zeros((len(starts), width), dtype=bool)
    pos = np.full((len(starts), width), -1, dtype=np.int64)
    for b, (s, e) in enumerate(zip(starts, ends)):
        mat[b, :e - s] = ids[s:e]
        mask[b, :e - s] = True
        pos[b, :e - s] = np.arange(s, e)
    return mat, mask, pos


def _stack_bags(bags, sizes):
    """One (sum B, max L) bag matrix from every rank's (mat, mask, pos); positions shifted
    by the ids of the ranks before (``sizes``: each rank's number of ids)."""
    width = max(m.shape[1] for m, _, _ in bags)
    mats, masks, poss, base = [], [], [], 0
    for (m, k, p), n in zip(bags, sizes):
        grow = ((0, 0), (0, width - m.shape[1]))
        mats.append(np.pad(m, grow))
        masks.append(np.pad(k, grow))
        poss.append(np.pad(np.where(p >= 0, p + base, -1), grow, constant_values=-1))
        base += n
    return np.concatenate(mats), np.concatenate(masks), np.concatenate(poss)


def sharded_embedding_bag(types, args, kwargs, pg):
    """F.embedding_bag with a ShardedTensor weight (see the module docstring)."""
    v = _bind("embedding_bag", _BAG_ARGS, args, kwargs)
    input, weight, offsets = v.get("input"), v.get("weight"), v.get("offsets")
    psw = v.get("per_sample_weights")
    mode = v.get("mode") or "mean"
    include_last = bool(v.get("include_last_offset"))
    if not isinstance(input, _C.TensorBase):
        raise TypeError("input need to be torch.Tensor")
    if offsets is not None and not isinstance(offsets, _C.TensorBase):
        raise TypeError("offsets need to be torch.Tensor")
    if psw is not None and not isinstance(psw, _C.TensorBase):
        raise TypeError("per_sample_weights need to be torch.Tensor")
    if input.dim() > 2:
        raise ValueError("Input more than 2 dims not supported")
    ids = _host_ids(input)
    _validate_common("EmbeddingBag", input, weight, v)
    if offsets is not None and input.dim() != 1:
        raise ValueError("Input dimension needs to be exactly 1 dim")
    if input.dim() == 1 and offsets is None:
        raise ValueError("offsets is required for 1D input")
    if psw is not None and tuple(psw.shape) != tuple(input.shape):
        raise ValueError(f"per_sample_weights size {psw.size()} not equal to input size "
                         f"{input.size()}")
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode '{mode}' is not supported")
    if psw is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. "
                                  f"per_sample_weights is only supported for mode='sum' (got "
                                  f"mode='{mode}'). Please open a feature request on GitHub.")
    if include_last and offsets is None:
        raise ValueError('offsets is required for flag "include_last_offset"!')
    offs = _host_ids(offsets).reshape(-1) if offsets is not None else np.zeros(0, np.int64)
    lay = chunk_layout(weight, "embedding_bag")
    pad = _padding_idx(v.get("padding_idx"), weight.size(0))
    err = _ids_error(ids, weight)
    own = None
    if err is None and include_last and (not offs.size or int(offs[-1]) != input.size(0)):
        err = ValueError("offsets need to have the input size in the end when the flag "
                         '"include_last_offset" is on!')
    if err is None:
        try:
            own = _bags(ids, offs, include_last)
        except RuntimeError as e:
            err = e
    pbits = (psw.detach().cpu().to(_C.float64).numpy().reshape(-1).view(np.int64)
             if psw is not None else np.zeros(0, np.int64))
    parts = [ids.reshape(-1), offs, pbits]
    bads, shapes, peers = exchange(ids.shape, parts, err is not None, _device(weight, lay), pg)
    raise_if_bad(bads, err, pg, "embedding_bag")
    same = _same_everywhere(shapes, peers, ids.shape, parts)
    if same:
        mat, member, pos = own
        looked_up, psw_flat = ids, psw.reshape(-1) if psw is not None else None
    else:
        all_ids = [p[0].reshape(sh) for p, sh in zip(peers, shapes)]
        bags = [_bags(i, p[1], include_last) for i, p in zip(all_ids, peers)]
        sizes = [i.size for i in all_ids]
        mat, member, pos = _stack_bags(bags, sizes)
        looked_up = np.concatenate([i.reshape(-1) for i in all_ids])
        psw_flat = None
        if psw is not None:
            if any(p[2].size != n for p, n in zip(peers, sizes)):
                raise ValueError("embedding_bag: per_sample_weights must be given on every "
                                 "rank or on none")
            psw_flat = gather_from_ranks(psw.reshape(-1), sizes, list(range(len(sizes))), 0,
                                         pg)
    if v.get("max_norm"):
        _renorm_(lay, weight, looked_up, v["max_norm"], v.get("norm_type", 2.0), pg)
    out = _bag_core(lay, weight, mat, member, pos, psw_flat, mode, pad, pg)
    if same:
        return out
    start = sum(b[0].shape[0] for b in bags[:lay.rank])
    return own_rows(out, start, own[0].shape[0], pg)


def _bag_core(lay, weight, mat, member, pos, psw_flat, mode, pad, pg):
    """The replicated bag reduction of the bags ``mat`` (see the module docstring)."""
    counted = member & (mat != pad) if pad is not None else member
    rows, mine = _local_lookup(lay, weight, mat, counted, pg, False)  # (B, L, width)
    dev = rows
    if mode == "max":
        neg = np.where(counted & mine, 0.0, -np.inf)[..., None]
        local = (rows + _dev(neg, dev).to(rows.dtype)).max(1)
        local = local[0] if isinstance(local, tuple) else getattr(local, "values", local)
        out = _assemble(lay, local, weight, pg, "max")
        empty = counted.sum(1) == 0
        if empty.any():  # torch: an empty bag is all zeros
            from .. import where  # noqa: PLC0415
            filled = _dev(np.broadcast_to(~empty[:, None], tuple(out.shape)).copy(), dev)
            out = where(filled, out, _zeros(tuple(out.shape), dtype=out.dtype,
                                              device=out.device))
        return out
    if psw_flat is not None:
        w = copy_to_ranks(psw_flat, pg)
        w = w.index_select(0, _dev(np.maximum(pos, 0).reshape(-1), dev)).reshape(mat.shape)
        rows = rows * w.unsqueeze(-1).to(rows.dtype)
    local = rows.sum(1)
    out = _assemble(lay, local, weight, pg)
    if mode == "mean":
        counts = counted.sum(1).astype(np.float64)
        out = out / _dev(np.maximum(counts, 1.0)[:, None], dev).to(out.dtype)
    return out


def _register():
    from ..nn import functional as F  # noqa: PLC0415
    for name, impl in (("embedding", sharded_embedding), ("embedding_bag", sharded_embedding_bag)):
        fn = getattr(F, name, None)
        if fn is not None:  # shardopt.nn's embedding functions (issue 10's nn layer)
            _sharded_op_impl(fn)(impl)


_register()
