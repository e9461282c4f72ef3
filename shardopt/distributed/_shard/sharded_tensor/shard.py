"""torch.distributed._shard.sharded_tensor.shard's path."""
from shardopt.sharded_tensor.shard import Shard  # noqa: F401
