"""shard_module and its forward hooks (torch.distributed._shard.api: shard_module,
_reshard_output, _collect_local_shard).

Deviation from torch, on purpose: the whole plan is checked before anything is sharded
(torch shards entry by entry and can leave a module half sharded when a later entry is
invalid).  The checks are local and every rank holds the same plan, so every rank raises
the same error and no rank is left waiting in a collective.  A parameter conflicts with a
Sharder only when it lies in that Sharder's submodule tree (torch compares string prefixes,
so "emb" would also claim "embeddings.weight").

A Sharder's result is stored as torch stores it: on the parent, as the attribute literally
named ``mod_name``; the planned submodule itself stays where it is.  torch's own Sharder
example relies on that: its sharded module shards the original submodule's parameters in
place and defines no forward, so the model keeps calling the original submodule.
"""
from ..nn import Module
from ..sharded_tensor import ShardedTensor
from ..sharded_tensor._shard_api import shard_parameter
from ..sharder import Sharder
from ..sharding_spec import ChunkShardingSpec, ShardingSpec
from .api import ShardingPlan

__all__ = ["shard_module", "_reshard_output", "_collect_local_shard"]


def _reshard_output(module, resharding_spec):
    """Register a forward hook on ``module`` that reshards a ShardedTensor output to
    ``resharding_spec`` (other outputs pass through); returns ``module``."""

    def hook_func(_module, _input, output):
        if not isinstance(output, ShardedTensor):
            return output
        return output.reshard(resharding_spec)

    module.register_forward_hook(hook_func)
    return module


def _collect_local_shard(module):
    """Register a forward hook on ``module`` that returns this rank's local tensor of a
    ShardedTensor output (a ChunkShardingSpec's sharding dim is squeezed away when the local
    piece has size 1 along it); returns ``module``."""

    def hook_func(_module, _input, output):
        if isinstance(output, ShardedTensor):
            local_tensor = output.local_tensor()
            spec = output.sharding_spec()
            if isinstance(spec, ChunkShardingSpec) and local_tensor.size(spec.dim) == 1:
                local_tensor = local_tensor.squeeze(spec.dim)
            return local_tensor
        return None  # keep the output as it is

    module.register_forward_hook(hook_func)
    return module


def _under(path, root):
    return root == "" or path == root or path.startswith(root + ".")


def _check_plan(module, plan):
    """Raise torch's errors for an invalid plan before anything is sharded."""
    if not isinstance(plan, ShardingPlan):
        raise TypeError(f"plan must be a ShardingPlan, got {type(plan).__name__}")
    if not isinstance(plan.plan, dict):
        raise TypeError(f"ShardingPlan.plan must be a dict, got {type(plan.plan).__name__}")
    sharder_paths = [name for name, spec in plan.plan.items() if isinstance(spec, Sharder)]
    for name, spec in plan.plan.items():
        if isinstance(spec, ShardingSpec):
            module_path, _, param_name = name.rpartition(".")
            for sharder_path in sharder_paths:
                if sharder_path != "" and _under(module_path, sharder_path):
                    raise RuntimeError(
                        f"ShardingPlan is in-valid, trying to shard a parameter: {name}, "
                        f"but there's already a Sharder entry for module {sharder_path}, "
                        f"parameter sharding should not conflict with the submodule tree "
                        f"that a Sharder is working with!")
            mod = module.get_submodule(module_path)
            if not hasattr(mod, param_name):
                raise AttributeError(f"{mod._get_name()} has no attribute `{param_name}`")
        elif isinstance(spec, Sharder):
            if name == "":
                raise KeyError("Module path must not be empty for custom sharder!")
            module.get_submodule(name)
        else:
            raise TypeError(f"Only `ShardingSpec` and `Sharder` are supported to shard '{name}'")
    # Output paths inside a Sharder's tree can only be resolved once it has run.
    for module_path, output_spec in (plan.output_plan or {}).items():
        if not isinstance(output_spec, ShardingSpec):
            raise TypeError(
                f"Only `ShardingSpec` is supported as output_plan for '{module_path}'")
        if not any(p != "" and _under(module_path, p) for p in sharder_paths):
            module.get_submodule(module_path)
    if plan.return_local_tensor is not None:
        if isinstance(plan.return_local_tensor, str):
            raise TypeError("ShardingPlan.return_local_tensor must be a list of module "
                            "paths, got a str")
        for module_path in plan.return_local_tensor:
            if not any(p != "" and _under(module_path, p) for p in sharder_paths):
                module.get_submodule(module_path)


def shard_module(module, plan, src_rank=0, process_group=None):
    """Shard ``module`` according to ``plan``: shard each planned parameter (scattered from
    ``src_rank``), run each planned submodule's Sharder (its result is set on the parent as
    attribute ``mod_name``, as torch does; the submodule stays), then hook the
    modules named in ``output_plan`` (reshard their ShardedTensor output) and
    ``return_local_tensor`` (return the local tensor instead).  Collective: every rank of
    ``process_group`` (default: the global group) calls it with the same plan.

    Args:
        module (:class:`shardopt.nn.Module`): the module to shard, in place.
        plan (:class:`ShardingPlan`): what to shard and how.
        src_rank (int): the rank whose parameter values are scattered. Default: 0.
        process_group (ProcessGroup, optional): the group to shard over. Default: None
            (the global group).
    """
    _check_plan(module, plan)
    for name, spec in plan.plan.items():
        if isinstance(spec, ShardingSpec):
            module_path, _, param_name = name.rpartition(".")
            shard_parameter(module.get_submodule(module_path), param_name, spec,
                            src_rank=src_rank, process_group=process_group)
        else:
            parent_path, _, _mod_name = name.rpartition(".")
            sharded = spec.shard(module.get_submodule(name))
            if not isinstance(sharded, Module):
                raise TypeError(f"Sharder {type(spec).__name__}.shard must return an "
                                f"nn.Module for '{name}', got {type(sharded).__name__}")
            # torch: ``parent_mod.mod_name = sharded_mod`` (see the module docstring)
            module.get_submodule(parent_path).mod_name = sharded
    for module_path, output_spec in (plan.output_plan or {}).items():
        _reshard_output(module.get_submodule(module_path), output_spec)
    for module_path in plan.return_local_tensor or ():
        _collect_local_shard(module.get_submodule(module_path))
