"""torch.distributed._shard.sharder's path (implementation: shardopt.sharder)."""
from shardopt.sharder import Sharder  # noqa: F401

__all__ = ["Sharder"]
