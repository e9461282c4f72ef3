"""shardopt.sharding_plan: torch.distributed._shard.sharding_plan (ShardingPlan,
ShardingPlanner) and ``shard_module``, which applies a plan to a module."""
from .api import ShardingPlan, ShardingPlanner
from ._apply import _collect_local_shard, _reshard_output, shard_module

__all__ = ["ShardingPlan", "ShardingPlanner", "shard_module"]
