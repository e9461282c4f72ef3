"""torch.distributed._shard.sharding_plan.api's path (implementation:
shardopt.sharding_plan.api)."""
from shardopt.sharding_plan.api import ShardingPlan, ShardingPlanner  # noqa: F401
