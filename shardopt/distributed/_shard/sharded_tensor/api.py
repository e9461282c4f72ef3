"""torch.distributed._shard.sharded_tensor.api's path."""
from shardopt.sharded_tensor.api import *  # noqa: F401,F403
from shardopt.sharded_tensor.api import (  # noqa: F401
    ShardedTensor,
    ShardedTensorBase,
    _create_tensor_from_params,
    _sharded_tensor_map,
    load_with_process_group,
)
from shardopt.sharded_tensor.metadata import ShardedTensorMetadata, TensorProperties  # noqa: F401
from shardopt.sharded_tensor.shard import Shard  # noqa: F401
