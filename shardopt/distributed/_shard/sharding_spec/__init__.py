"""torch.distributed._shard.sharding_spec's path (implementation: shardopt.sharding_spec)."""
from shardopt.sharding_spec import *  # noqa: F401,F403
from shardopt.sharding_spec import _infer_sharding_spec_from_shards_metadata  # noqa: F401
from . import _internals, api, chunk_sharding_spec  # noqa: F401
