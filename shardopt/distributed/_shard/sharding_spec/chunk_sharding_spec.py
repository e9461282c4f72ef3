"""torch.distributed._shard.sharding_spec.chunk_sharding_spec's path."""
from shardopt.sharding_spec.chunk_sharding_spec import ChunkShardingSpec  # noqa: F401
