"""torch.distributed._shard.common_op_utils's path (implementation:
shardopt/sharded_tensor/_shard_registry.py)."""
from shardopt.sharded_tensor._shard_registry import _basic_validation  # noqa: F401
