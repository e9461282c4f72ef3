"""get_state_dict / set_state_dict (torch.distributed.checkpoint.state_dict).

``get_state_dict(model, optimizers)`` returns ``(model_state_dict, optim_state_dict)``:

* the model's ``state_dict()`` (ShardedTensor parameters stay ShardedTensors; values share
  memory with the parameters, so ``load`` into it loads the model in place);
* the optimizers' state keyed by fully qualified parameter name (torch's format)::

      {"state": {"fc1.weight": {"step": Tensor, "exp_avg": ShardedTensor, ...}, ...},
       "param_groups": [{"lr": ..., ..., "params": ["fc1.weight", ...]}, ...]}

  For a ShardedTensor parameter (a :class:`ShardedOptimizer` entry), each state tensor with
  the local shard's shape is a ShardedTensor with the parameter's sharding, built over the
  optimizer's own state tensors (no copy: loading into it loads the optimizer); a scalar
  state (Adam's ``step``) is a replicated Tensor.  Every rank gets the same keys, also a rank
  that holds no shard of a parameter (its ShardedTensors have no local shards).  As in
  torch, an optimizer without state yet gets it by one step with zero gradients at lr=0.

``set_state_dict(model, optimizers, model_state_dict=..., optim_state_dict=...)`` copies the
values into the model and optimizers (values that already share their memory are skipped,
so ``get_state_dict`` -> ``load`` -> ``set_state_dict`` costs no copy) and applies the saved
hyper-parameters.  Resharding is ``load``'s job: here a ShardedTensor value must have this
rank's layout (or be a full Tensor, from which each local shard is cut).
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ... import _C
from .. import distributed_c10d as c10d
from ._traverse import is_sharded

__all__ = ["StateDictOptions", "get_state_dict", "set_state_dict", "get_model_state_dict",
           "get_optimizer_state_dict", "set_model_state_dict", "set_optimizer_state_dict"]

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


@dataclass
class StateDictOptions:
    """torch's options; shardopt supports ``strict`` and ``ignore_frozen_params`` (the others
    must keep their defaults)."""
    full_state_dict: bool = False
    cpu_offload: bool = False
    ignore_frozen_params: bool = False
    keep_submodule_prefixes: bool = True
    strict: bool = True
    broadcast_from_rank0: bool = False
    flatten_optimizer_state_dict: bool = False


def _options(options, fn: str) -> StateDictOptions:
    options = StateDictOptions() if options is None else options
    if not isinstance(options, StateDictOptions):
        raise TypeError(f"{fn}: options must be a StateDictOptions, but got "
                        f"{type(options).__name__}")
    for name in ("full_state_dict", "cpu_offload", "broadcast_from_rank0",
                 "flatten_optimizer_state_dict"):
        if getattr(options, name):
            raise NotImplementedError(f"{fn}: StateDictOptions.{name}=True is not supported by "
                                      f"shardopt (save the sharded state dict with "
                                      f"shardopt.distributed.checkpoint.save and consolidate it "
                                      f"with `python -m shardopt.distributed.checkpoint "
                                      f"consolidate`)")
    if not options.keep_submodule_prefixes:
        raise NotImplementedError(f"{fn}: keep_submodule_prefixes=False is not supported")
    return options


def _optim_list(optimizers) -> List:
    from ...optim import Optimizer  # noqa: PLC0415
    if isinstance(optimizers, Optimizer):
        return [optimizers]
    try:
        out = list(optimizers)
    except TypeError:
        raise TypeError(f"optimizers must be an Optimizer or an iterable of them, but got "
                        f"{type(optimizers).__name__}") from None
    for o in out:
        if not isinstance(o, Optimizer):
            raise TypeError(f"optimizers must be Optimizers, but got {type(o).__name__}")
    return out


def _fqns(model) -> Dict[int, str]:
    from ...sharded_optim import named_params_with_sharded_tensor  # noqa: PLC0415
    out = {}
    for name, p in named_params_with_sharded_tensor(model):
        out.setdefault(id(p), name)
    return out


def _is_sharded_optim(o) -> bool:
    from ...sharded_optim import ShardedOptimizer  # noqa: PLC0415
    return isinstance(o, ShardedOptimizer)


def _entries(model, optim) -> List[Tuple[List[Tuple[str, Any, tuple]], dict]]:
    """Per param group: ([(fqn, param value, local tensors)], group)."""
    fqn_of = _fqns(model)
    out = []
    if _is_sharded_optim(optim):
        for names, group in zip(optim._group_names, optim.param_groups):
            recs = []
            for name in names:
                value, ts = optim._entries[name]
                recs.append((fqn_of.get(id(value), name), value, tuple(ts)))
            out.append((recs, group))
        return out
    for group in optim.param_groups:
        recs = []
        for p in group["params"]:
            if id(p) not in fqn_of:
                raise ValueError("get_state_dict: the optimizer holds a parameter that is not a "
                                 "parameter of the model")
            recs.append((fqn_of[id(p)], p, (p,)))
        out.append((recs, group))
    return out


def _init_optim_state(optim) -> None:
    """torch's rule: an optimizer with no state takes one step with zero gradients at lr 0."""
    inner = optim._optim if _is_sharded_optim(optim) else optim
    if inner.state:
        return
    params = [p for g in inner.param_groups for p in g["params"]]
    for p in params:
        if p.grad is not None:
            raise RuntimeError("get_state_dict: the optimizer has no state yet and a parameter "
                               "has a gradient; state dicts can be taken after step() or "
                               "before any gradient is computed")
    if not params:
        return
    import shardopt  # noqa: PLC0415
    lrs = [g["lr"] for g in inner.param_groups]
    for p in params:
        p.grad = shardopt.zeros_like(p)
    try:
        for g in inner.param_groups:
            g["lr"] = 0.0
        inner.step()
    finally:
        for g, lr in zip(inner.param_groups, lrs):
            g["lr"] = lr
        inner.zero_grad(set_to_none=True)


def _state_st(param, local_tensors, state_tensors):
    """A ShardedTensor over the optimizer's state tensors with `param`'s sharding."""
    from ...sharded_tensor import Shard, ShardedTensor  # noqa: PLC0415
    from ...sharded_tensor.metadata import ShardedTensorMetadata, TensorProperties  # noqa: PLC0415
    md = param.metadata()
    dtype = state_tensors[0].dtype if state_tensors else None
    props = TensorProperties(dtype=dtype if dtype is not None else md.tensor_properties.dtype,
                             requires_grad=False)
    gmd = ShardedTensorMetadata(list(md.shards_metadata), md.size, props)
    shards = [Shard(t, s.metadata) for t, s in zip(state_tensors, param.local_shards())]
    return ShardedTensor._init_from_local_shards_and_global_metadata(
        shards, gmd, process_group=param._process_group)


def _optim_state(model, optim) -> Tuple[Dict[str, Any], List[dict], List]:
    """(FQN-keyed state, param_groups, [(fqn, param, locals)] of sharded params)."""
    inner_state = optim.state
    state, groups, sharded = {}, [], []
    for recs, group in _entries(model, optim):
        packed = {k: v for k, v in group.items() if k != "params"}
        packed["params"] = [fqn for fqn, _, _ in recs]
        groups.append(packed)
        for fqn, value, ts in recs:
            if is_sharded(value):
                sharded.append((fqn, value, ts))
                continue
            if ts[0] in inner_state and len(inner_state[ts[0]]) > 0:
                state[fqn] = dict(inner_state[ts[0]])
    return state, groups, sharded


def _sharded_state(optim, sharded) -> Dict[str, Dict[str, Any]]:
    """The state of sharded parameters, the same keys on every rank (one exchange)."""
    import shardopt  # noqa: PLC0415
    inner_state = optim.state
    desc = {}
    for fqn, value, ts in sharded:
        if not ts or ts[0] not in inner_state:
            continue
        d = {}
        for k, v in inner_state[ts[0]].items():
            if isinstance(v, _C.TensorBase) and v.dim() > 0 \
                    and tuple(v.shape) == tuple(ts[0].shape):
                d[k] = ("sharded", str(v.dtype))
            elif isinstance(v, _C.TensorBase):
                d[k] = ("scalar", v.detach().cpu().tolist(), str(v.dtype), tuple(v.shape))
            else:
                d[k] = ("object", v)
        desc[fqn] = d
    if c10d.is_initialized() and sharded:
        pg = sharded[0][1]._process_group  # the group the parameters are sharded over
        everyone = [None] * c10d.get_world_size(pg)
        c10d.all_gather_object(everyone, desc, group=pg)
        merged = {}
        for d in everyone:
            for fqn, kd in d.items():
                merged.setdefault(fqn, kd)
        desc = merged
    out = {}
    for fqn, value, ts in sharded:
        if fqn not in desc:
            continue
        mine = inner_state[ts[0]] if ts and ts[0] in inner_state else None
        entry = {}
        for k, d in desc[fqn].items():
            if d[0] == "sharded":
                entry[k] = _state_st(value, ts, [inner_state[t][k] for t in ts])
            elif d[0] == "scalar":
                entry[k] = mine[k] if mine is not None else shardopt.tensor(
                    d[1], dtype=getattr(shardopt, d[2].rsplit(".", 1)[-1]))
            else:
                entry[k] = mine[k] if mine is not None else d[1]
        out[fqn] = entry
    return out


def get_model_state_dict(model, *, submodules=None, options: Optional[StateDictOptions] = None):
    """The model's state dict (ShardedTensors kept, memory shared with the parameters)."""
    options = _options(options, "get_model_state_dict")
    if submodules is not None:
        raise NotImplementedError("get_model_state_dict: submodules= is not supported (it is "
                                  "deprecated in torch)")
    sd = model.state_dict()
    if options.ignore_frozen_params:
        from ...sharded_optim import named_params_with_sharded_tensor  # noqa: PLC0415
        frozen = {n for n, p in named_params_with_sharded_tensor(model) if not p.requires_grad}
        for n in frozen:
            sd.pop(n, None)
    return sd


def get_optimizer_state_dict(model, optimizers, *, submodules=None,
                             options: Optional[StateDictOptions] = None) -> Dict[str, Any]:
    """The optimizers' state keyed by parameter name (see the module docstring)."""
    _options(options, "get_optimizer_state_dict")
    if submodules is not None:
        raise NotImplementedError("get_optimizer_state_dict: submodules= is not supported")
    state, groups = {}, []
    for optim in _optim_list(optimizers):
        _init_optim_state(optim)
        s, g, sharded = _optim_state(model, optim)
        s.update(_sharded_state(optim, sharded))
        for fqn in s:
            if fqn in state:
                raise ValueError(f"get_state_dict: parameter {fqn!r} is in two optimizers")
        state.update(s)
        groups.extend(g)
    return {"state": state, "param_groups": groups}


def get_state_dict(model, optimizers, *, submodules=None,
                   options: Optional[StateDictOptions] = None):
    """(model state dict, optimizer state dict) -- see the module docstring.

    Args:
        model: the module (its ShardedTensor parameters stay sharded).
        optimizers: an Optimizer (plain or ShardedOptimizer) or an iterable of them.
        options: StateDictOptions (``strict``, ``ignore_frozen_params``).
    """
    return (get_model_state_dict(model, submodules=submodules, options=options),
            get_optimizer_state_dict(model, optimizers, submodules=submodules, options=options))


# ------------------------------------------------------------------ setting

def _same_memory(a, b) -> bool:
    return (a.data_ptr() == b.data_ptr() and tuple(a.shape) == tuple(b.shape)
            and a.dtype == b.dtype)


def _copy_into(dst, src, key: str) -> None:
    """Copy `src` (Tensor, ShardedTensor with dst's layout, or number) into `dst`."""
    import shardopt  # noqa: PLC0415
    with shardopt.no_grad():
        if is_sharded(dst):
            if is_sharded(src):
                mine = [(list(s.metadata.shard_offsets), list(s.metadata.shard_sizes))
                        for s in dst.local_shards()]
                theirs = {(tuple(s.metadata.shard_offsets), tuple(s.metadata.shard_sizes)): s.tensor
                          for s in src.local_shards()}
                for (offs, sizes), s in zip(mine, dst.local_shards()):
                    t = theirs.get((tuple(offs), tuple(sizes)))
                    if t is None:
                        raise ValueError(f"set_state_dict: {key!r} is sharded differently in the "
                                         f"state dict than in the model on this rank (no shard at "
                                         f"offsets {offs}); load the checkpoint into "
                                         f"get_state_dict()'s state dict to reshard")
                    if not _same_memory(s.tensor, t):
                        s.tensor.copy_(t)
                return
            if isinstance(src, _C.TensorBase):
                if tuple(src.shape) != tuple(dst.size()):
                    raise ValueError(f"set_state_dict: size mismatch for {key!r}: "
                                     f"{tuple(src.shape)}"
                                     f" given, {tuple(dst.size())} in the model")
                for s in dst.local_shards():
                    piece = src
                    for d, (o, n) in enumerate(zip(s.metadata.shard_offsets,
                                                   s.metadata.shard_sizes)):
                        piece = piece.narrow(d, o, n)
                    s.tensor.copy_(piece)
                return
            raise TypeError(f"set_state_dict: {key!r} must be a Tensor or ShardedTensor, but got "
                            f"{type(src).__name__}")
        if is_sharded(src):
            raise ValueError(f"set_state_dict: {key!r} is a ShardedTensor in the state dict but "
                             f"a Tensor in the model")
        if not isinstance(src, _C.TensorBase):
            src = shardopt.tensor(src, dtype=dst.dtype)
        if tuple(src.shape) != tuple(dst.shape):
            raise ValueError(f"set_state_dict: size mismatch for {key!r}: {tuple(src.shape)} "
                             f"given, {tuple(dst.shape)} in the model")
        if not _same_memory(dst, src):
            dst.copy_(src)


def set_model_state_dict(model, model_state_dict: Dict[str, Any], *,
                         options: Optional[StateDictOptions] = None):
    """Copy `model_state_dict` into the model; returns (missing_keys, unexpected_keys)."""
    options = _options(options, "set_model_state_dict")
    cur = model.state_dict()
    missing = [k for k in cur if k not in model_state_dict]
    unexpected = [k for k in model_state_dict if k not in cur]
    if options.ignore_frozen_params:
        from ...sharded_optim import named_params_with_sharded_tensor  # noqa: PLC0415
        frozen = {n for n, p in named_params_with_sharded_tensor(model) if not p.requires_grad}
        missing = [k for k in missing if k not in frozen]
    if options.strict and (missing or unexpected):
        msgs = []
        if unexpected:
            msgs.append("Unexpected key(s) in state_dict: "
                        + ", ".join(f'"{k}"' for k in unexpected))
        if missing:
            msgs.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing))
        raise RuntimeError(f"Error(s) in loading state_dict for {type(model).__name__}:\n\t"
                           + "\n\t".join(msgs))
    for k, v in model_state_dict.items():
        if k in cur:
            _copy_into(cur[k], v, k)
    return _IncompatibleKeys(missing, unexpected)


def set_optimizer_state_dict(model, optimizers, optim_state_dict: Dict[str, Any], *,
                             options: Optional[StateDictOptions] = None) -> None:
    """Copy an FQN-keyed optimizer state dict into the optimizers."""
    _options(options, "set_optimizer_state_dict")
    if not isinstance(optim_state_dict, dict) or "state" not in optim_state_dict \
            or "param_groups" not in optim_state_dict:
        raise ValueError("set_state_dict: optim_state_dict must be a dict with 'state' and "
                         "'param_groups' (from get_state_dict)")
    given_state, given_groups = optim_state_dict["state"], optim_state_dict["param_groups"]
    by_params = {}
    for g in given_groups:
        by_params[tuple(sorted(g["params"]))] = g
    for optim in _optim_list(optimizers):
        _init_optim_state(optim)
        cur_state, cur_groups, sharded = _optim_state(model, optim)
        cur_state.update(_sharded_state(optim, sharded))
        for fqn, entry in cur_state.items():
            if fqn not in given_state:
                raise ValueError(f"set_state_dict: no optimizer state for parameter {fqn!r} in "
                                 f"optim_state_dict")
            given = given_state[fqn]
            for k, v in entry.items():
                if k not in given:
                    raise ValueError(f"set_state_dict: optimizer state of {fqn!r} has no {k!r}")
                if isinstance(v, _C.TensorBase) or is_sharded(v):
                    _copy_into(v, given[k], f"state.{fqn}.{k}")
        # a parameter with several local shards has one state dict per shard: its scalar
        # tensors (step) were set through the first shard's; the others get the same value.
        # Non-tensor state values are replaced in every per-tensor dict.
        import shardopt  # noqa: PLC0415
        for recs, group in _entries(model, optim):
            for fqn, value, ts in recs:
                given = given_state.get(fqn, {})
                for t in ts:
                    if t not in optim.state:
                        continue
                    st = optim.state[t]
                    for k, v in given.items():
                        if is_sharded(v):
                            continue
                        if isinstance(v, _C.TensorBase):
                            if t is not ts[0] and isinstance(st.get(k), _C.TensorBase) \
                                    and not _same_memory(st[k], v):
                                with shardopt.no_grad():
                                    st[k].copy_(v)
                        else:
                            st[k] = v
            key = tuple(sorted(fqn for fqn, _, _ in recs))
            g = by_params.get(key)
            if g is None:
                raise ValueError(f"set_state_dict: no param group in optim_state_dict holds "
                                 f"exactly the parameters {list(key)[:5]}")
            for k, v in g.items():
                if k != "params":
                    group[k] = v


def set_state_dict(model, optimizers, *, model_state_dict: Dict[str, Any],
                   optim_state_dict: Dict[str, Any], options: Optional[StateDictOptions] = None):
    """Load the model and optimizer state dicts (from get_state_dict, typically filled by
    ``load``) into `model` and `optimizers`.  Returns (missing_keys, unexpected_keys) of
    the model, as ``load_state_dict`` does."""
    result = set_model_state_dict(model, model_state_dict, options=options)
    set_optimizer_state_dict(model, optimizers, optim_state_dict, options=options)
    return result
