"""torch.distributed._shard.sharded_tensor.metadata's path."""
from shardopt.sharded_tensor.metadata import *  # noqa: F401,F403
from shardopt.sharded_tensor.metadata import ShardedTensorMetadata, TensorProperties  # noqa: F401
from shardopt._C import ShardMetadata  # noqa: F401
