"""torch.distributed._shard.sharded_tensor.logging_handlers's path."""
from shardopt.sharded_tensor.logging_handlers import _log_handlers  # noqa: F401
