"""torch.distributed._shard.sharding_plan's path (implementation: shardopt.sharding_plan)."""
from .api import ShardingPlan, ShardingPlanner  # noqa: F401
