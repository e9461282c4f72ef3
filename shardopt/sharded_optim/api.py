"""ShardedOptimizer (torch.distributed._shard.sharded_optim.api.ShardedOptimizer).

``ShardedOptimizer(_C.ShardedOptimizerBase, Optimizer)``: the C base owns the object's data
(``named_params``, the inner optimizer ``_optim``, the name table ``_entries`` and the
per-group name lists ``_group_names``; csrc/shard/sharded_optim.c); this class body holds
the behaviour.  The inner optimizer, built over the flat list of *local* tensors, does the
math (one fused C call per param group), so ``step()`` costs one Python frame more than a
plain optimizer over the local shards.

Beyond torch (which raises NotImplementedError for all three): ``state_dict()``,
``load_state_dict()`` and ``add_param_group()``.  The state dict is keyed by PARAMETER NAME
(not by position) and carries each parameter's layout::

    {"state":        {name: {...}            for a Tensor,
                      name: [{...}, ...]     for a ShardedTensor, one dict per local shard},
     "param_groups": [{<hyper-parameters>, "params": [name, ...]}, ...],
     "layouts":      {name: {"type": "Tensor", "size": (..)}  or
                            {"type": "ShardedTensor", "size": (..),
                             "shards": ((offsets, sizes, placement), ...)  all, sorted,
                             "local_shards": (...)  this rank's, in local order}}}

``load_state_dict`` compares the saved layouts with the current ones before touching any
state.  The global part ("shards") is identical on every rank, so a checkpoint written with
another sharding fails on every rank with a ValueError naming the parameter and showing
both layouts; shards are never silently mixed.  The state is then handed to the inner
optimizer's ``load_state_dict`` (positional format), which casts tensors to each param's
device and dtype.
"""
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional

from .. import _C
from ..optim import Optimizer

__all__ = ["ShardedOptimizer"]


def _sharded_tensor_class():
    # the sharded-tensor layer sits beside this one; imported on use
    from ..sharded_tensor import ShardedTensor  # noqa: PLC0415
    return ShardedTensor


def _local_tensors(value, where, key):
    """The local tensors of a Tensor (itself) or a ShardedTensor (its local shards')."""
    if isinstance(value, _sharded_tensor_class()):
        out = []
        for i, shard in enumerate(value.local_shards()):
            t = shard.tensor
            if not isinstance(t, _C.TensorBase):
                raise TypeError(f"ShardedOptimizer: local shard {i} of {where}[{key!r}] holds a "
                                f"{type(t).__name__}, not a Tensor")
            out.append(t)
        return tuple(out)
    if isinstance(value, _C.TensorBase):
        return (value,)
    raise TypeError(f"ShardedOptimizer: {where}[{key!r}] must be a Tensor or a ShardedTensor, "
                    f"but got {type(value).__name__}")


def _shard_md_key(md):
    pl = md.placement
    return (tuple(md.shard_offsets), tuple(md.shard_sizes), None if pl is None else str(pl))


def _layout_of(value):
    if not isinstance(value, _sharded_tensor_class()):
        return {"type": "Tensor", "size": tuple(value.shape)}
    md = value.metadata()
    return {"type": "ShardedTensor", "size": tuple(md.size),
            "shards": tuple(sorted(_shard_md_key(m) for m in md.shards_metadata)),
            "local_shards": tuple(_shard_md_key(s.metadata) for s in value.local_shards())}


def _collect_params(params, group_idx, taken, where):
    """[(name, value, local tensors)] for a Mapping, a list of values or of (name, value)
    pairs, or a single Tensor/ShardedTensor.  Unnamed values are named
    "param_groups.<g>.<i>"; names must be str and new (not in `taken`, not repeated)."""
    if isinstance(params, Mapping):
        items = list(params.items())
    elif isinstance(params, (_C.TensorBase, _sharded_tensor_class())):
        items = [params]
    elif isinstance(params, (str, bytes, set, frozenset)):
        raise TypeError(f"ShardedOptimizer: {where} must be a mapping of parameter name to "
                        f"Tensor or ShardedTensor (or an ordered sequence of them), but got "
                        f"{type(params).__name__}")
    else:
        try:
            items = list(params)
        except TypeError:
            raise TypeError(f"ShardedOptimizer: {where} must be a mapping of parameter name to "
                            f"Tensor or ShardedTensor, but got {type(params).__name__}") from None
    out, seen = [], set()
    for i, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2:
            name, value = item
            if not isinstance(name, str):
                raise TypeError(f"ShardedOptimizer: parameter names in {where} must be str, but "
                                f"got {type(name).__name__} ({name!r})")
        else:
            name, value = f"param_groups.{group_idx}.{i}", item
        if name in taken or name in seen:
            raise ValueError(f"ShardedOptimizer: parameter {name!r} appears more than once in "
                             f"the optimizer")
        seen.add(name)
        out.append((name, value, _local_tensors(value, where, name)))
    return out


def _flat(recs):
    return [t for _, _, ts in recs for t in ts]


class ShardedOptimizer(_C.ShardedOptimizerBase, Optimizer):
    """ShardedOptimizer(named_params, optimizer_class, *args, **kwargs): an optimizer over
    the local shards of ShardedTensors (and plain Tensors).

    Args:
        named_params: a mapping name -> Tensor | ShardedTensor (for example
            ``dict(model.named_parameters())`` or
            ``dict(named_params_with_sharded_tensor(model))``).
        optimizer_class: the inner optimizer's class; it is built as
            ``optimizer_class(local_tensors, *args, **kwargs)`` over the flat list of local
            tensors (a Tensor as is, a ShardedTensor as its local shard tensors in local
            order).  Gradients are expected on those local tensors.

    ``param_groups``, ``state`` and ``defaults`` are the inner optimizer's own objects
    (also after ``load_state_dict``).  ``Optimizer.__init__`` is never called, as in torch.
    """

    def __init__(self, named_params: Mapping, optimizer_class: Callable, *optimizer_args,
                 **optimizer_kwargs) -> None:
        if not callable(optimizer_class):
            raise TypeError(f"ShardedOptimizer: optimizer_class must be callable (an optimizer "
                            f"class such as shardopt.optim.SGD), but got "
                            f"{type(optimizer_class).__name__}")
        if not isinstance(named_params, Mapping):
            raise TypeError(f"ShardedOptimizer: named_params must be a mapping of parameter "
                            f"name to Tensor or ShardedTensor (e.g. "
                            f"dict(module.named_parameters())), but got "
                            f"{type(named_params).__name__}")
        recs = _collect_params(named_params, 0, {}, "named_params")
        optim = optimizer_class(_flat(recs), *optimizer_args, **optimizer_kwargs)
        self.named_params = named_params
        self._optim = optim
        self._entries = {}
        self._group_names = []
        self._remember(recs)

    # -- bookkeeping --------------------------------------------------------------------

    def _remember(self, recs) -> None:
        for name, value, ts in recs:
            self._entries[name] = (value, ts)
        self._group_names.append([name for name, _, _ in recs])

    def _inner(self):
        if self._optim is None:
            raise RuntimeError("ShardedOptimizer is not initialized (__init__ was not called)")
        return self._optim

    @property
    def param_groups(self) -> List[Dict[str, Any]]:
        """The inner optimizer's param_groups."""
        return self._inner().param_groups

    @param_groups.setter
    def param_groups(self, value) -> None:
        self._inner().param_groups = value

    @property
    def state(self):
        """The inner optimizer's state."""
        return self._inner().state

    @state.setter
    def state(self, value) -> None:
        self._inner().state = value

    @property
    def defaults(self) -> Dict[str, Any]:
        """The inner optimizer's defaults."""
        return self._inner().defaults

    @defaults.setter
    def defaults(self, value) -> None:
        self._inner().defaults = value

    @property
    def param_names(self) -> List[str]:
        """Every parameter name, in optimizer order (named_params plus add_param_group's)."""
        return [n for names in (self._group_names or []) for n in names]

    # -- the optimizer surface ----------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every local tensor (delegates)."""
        return self._inner().zero_grad(bool(set_to_none))

    def step(self, closure: Optional[Callable] = None) -> None:
        """One step of the inner optimizer over the local shards; returns None (torch's
        ShardedOptimizer drops the closure's loss too)."""
        self._inner().step(closure)

    def state_dict(self) -> Dict[str, Any]:
        """This rank's optimizer state keyed by parameter name, with each parameter's
        layout (see the module docstring)."""
        inner = self._inner()
        inner_state, groups = inner.state, inner.param_groups
        if not isinstance(groups, list) or len(groups) != len(self._group_names):
            raise RuntimeError("ShardedOptimizer.state_dict: the inner optimizer's param_groups "
                               "were changed behind the ShardedOptimizer's back; add groups with "
                               "ShardedOptimizer.add_param_group")
        ShardedTensor = _sharded_tensor_class()
        state, pgs, layouts = {}, [], {}
        for group, names in zip(groups, self._group_names):
            if not isinstance(group, dict):
                raise TypeError("ShardedOptimizer.state_dict: a param group is not a dict")
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(names)
            pgs.append(packed)
            for name in names:
                value, ts = self._entries[name]
                layouts[name] = _layout_of(value)
                if not isinstance(value, ShardedTensor):
                    # ask first: indexing the defaultdict would create an entry
                    if ts[0] in inner_state:
                        s = inner_state[ts[0]]
                        if len(s) > 0:  # torch only lists params that have state
                            state[name] = s
                    continue
                item, any_state = [], False
                for t in ts:
                    if t in inner_state:
                        s = inner_state[t]
                        any_state = any_state or len(s) > 0
                    else:
                        s = {}
                    item.append(s)
                if any_state:
                    state[name] = item
        return {"state": state, "param_groups": pgs, "layouts": layouts}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load a state dict from ``state_dict()``; raises ValueError (before changing any
        state) if a parameter's layout differs or the names do not match."""
        inner = self._inner()
        if not isinstance(state_dict, dict):
            raise TypeError(f"ShardedOptimizer.load_state_dict: state_dict must be a dict, but "
                            f"got {type(state_dict).__name__}")
        for key in ("state", "param_groups", "layouts"):
            if key not in state_dict:
                raise ValueError(f"ShardedOptimizer.load_state_dict: the state dict has no "
                                 f"'{key}' entry (was it made by ShardedOptimizer.state_dict()?)")
        state, pgs, layouts = (state_dict["state"], state_dict["param_groups"],
                               state_dict["layouts"])
        if not (isinstance(state, dict) and isinstance(pgs, list) and isinstance(layouts, dict)):
            raise TypeError("ShardedOptimizer.load_state_dict: expected 'state' and 'layouts' to "
                            "be dicts and 'param_groups' a list")
        ng = len(self._group_names)
        if len(pgs) != ng:
            raise ValueError(f"ShardedOptimizer.load_state_dict: loaded state dict has "
                             f"{len(pgs)} parameter groups, this optimizer has {ng}")
        cur_groups = inner.param_groups
        if not isinstance(cur_groups, list) or len(cur_groups) != ng:
            raise RuntimeError("ShardedOptimizer.load_state_dict: the inner optimizer's "
                               "param_groups were changed behind the ShardedOptimizer's back")
        # 1. every check before any state changes: names per group, then layouts
        for g, (names, sg) in enumerate(zip(self._group_names, pgs)):
            if not isinstance(sg, dict):
                raise TypeError(f"ShardedOptimizer.load_state_dict: param group {g} is not a dict")
            if "params" not in sg:
                raise ValueError(f"ShardedOptimizer.load_state_dict: param group {g} has no "
                                 f"'params'")
            saved_names, cur_names = set(sg["params"]), set(names)
            if saved_names != cur_names:
                raise ValueError(f"ShardedOptimizer.load_state_dict: parameter group {g} does "
                                 f"not match: missing from the state dict "
                                 f"{sorted(cur_names - saved_names)}, not in this optimizer "
                                 f"{sorted(saved_names - cur_names)}")
            for name in names:
                if name not in layouts:
                    raise ValueError(f"ShardedOptimizer.load_state_dict: no layout saved for "
                                     f"parameter {name!r}")
                saved, cur = layouts[name], _layout_of(self._entries[name][0])
                if saved != cur:
                    raise ValueError(f"ShardedOptimizer.load_state_dict: parameter {name!r} is "
                                     f"laid out differently in the state dict than in this "
                                     f"optimizer (refusing to mix shards): saved layout "
                                     f"{saved!r}, current layout {cur!r}")
        for key in state:
            if key not in self._entries:
                raise ValueError(f"ShardedOptimizer.load_state_dict: the state dict has state "
                                 f"for parameter {key!r}, which is not in this optimizer")
        # 2. the positional state dict of the inner optimizer: params are numbered across its
        #    groups in its order (the flat local tensors), as torch's Optimizer.state_dict does
        ShardedTensor = _sharded_tensor_class()
        inner_state, inner_groups, idx = {}, [], 0
        for names, sg in zip(self._group_names, pgs):
            ids = []
            grp = dict(sg)
            grp["params"] = ids
            inner_groups.append(grp)
            for name in names:
                value, ts = self._entries[name]
                s = state.get(name)
                sharded = isinstance(value, ShardedTensor)
                if s is not None and sharded and (not isinstance(s, list) or len(s) != len(ts)):
                    raise ValueError(f"ShardedOptimizer.load_state_dict: the state of sharded "
                                     f"parameter {name!r} must be a list with one dict per local "
                                     f"shard ({len(ts)}), got {s!r}")
                if s is not None and not sharded and not isinstance(s, dict):
                    raise ValueError(f"ShardedOptimizer.load_state_dict: the state of parameter "
                                     f"{name!r} must be a dict, got {type(s).__name__}")
                for k in range(len(ts)):
                    ids.append(idx)
                    if s is not None:
                        sk = s[k] if sharded else s
                        if not isinstance(sk, dict):
                            raise ValueError(f"ShardedOptimizer.load_state_dict: the state of "
                                             f"local shard {k} of {name!r} must be a dict")
                        if len(sk) > 0:
                            inner_state[idx] = sk
                    idx += 1
        # 3. the inner optimizer casts every state tensor to its param's device and dtype
        inner.load_state_dict({"state": inner_state, "param_groups": inner_groups})

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Add a param group whose ``"params"`` is a mapping name -> Tensor/ShardedTensor, a
        list of values or of (name, value) pairs (unnamed values are named
        ``"param_groups.<g>.<i>"``)."""
        inner = self._inner()
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("ShardedOptimizer.add_param_group: the param group has no 'params' "
                             "entry")
        recs = _collect_params(param_group["params"], len(self._group_names), self._entries,
                               "param_group['params']")
        if not recs:
            raise ValueError("ShardedOptimizer.add_param_group: the param group has no parameters")
        group = dict(param_group)
        group["params"] = _flat(recs)
        # the inner optimizer validates (duplicates across groups, hyper-parameters) first
        inner.add_param_group(group)
        self._remember(recs)

    def __getstate__(self):
        raise TypeError("ShardedOptimizer cannot be pickled; save state_dict() instead")

    def __repr__(self) -> str:
        return Optimizer.__repr__(self)
