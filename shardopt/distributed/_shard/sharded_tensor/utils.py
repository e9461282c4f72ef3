"""torch.distributed._shard.sharded_tensor.utils's path."""
from shardopt.sharded_tensor.utils import (  # noqa: F401
    _flatten_tensor_size,
    _parse_and_validate_remote_device,
)
