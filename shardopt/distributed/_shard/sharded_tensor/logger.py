"""torch.distributed._shard.sharded_tensor.logger's path."""
from shardopt.sharded_tensor.logger import _get_logging_handler, _get_or_create_logger  # noqa: F401
