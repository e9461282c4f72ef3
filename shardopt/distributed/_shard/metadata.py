"""torch.distributed._shard.metadata's path: ShardMetadata (C, csrc/shard/metadata.c)."""
from shardopt._C import ShardMetadata  # noqa: F401

__all__ = ["ShardMetadata"]
