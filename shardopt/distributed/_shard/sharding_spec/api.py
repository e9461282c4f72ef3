"""torch.distributed._shard.sharding_spec.api's path."""
from shardopt.sharding_spec.api import *  # noqa: F401,F403
from shardopt.sharding_spec.api import _infer_sharding_spec_from_shards_metadata  # noqa: F401
from shardopt.sharding_spec import custom_sharding_spec_op  # noqa: F401
