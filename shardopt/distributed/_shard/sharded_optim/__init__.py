"""torch.distributed._shard.sharded_optim's path (implementation: shardopt.sharded_optim)."""
from shardopt.sharded_optim import ShardedOptimizer, named_params_with_sharded_tensor  # noqa: F401
