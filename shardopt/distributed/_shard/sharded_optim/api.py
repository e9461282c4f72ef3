"""torch.distributed._shard.sharded_optim.api's path."""
from shardopt.sharded_optim.api import ShardedOptimizer  # noqa: F401
