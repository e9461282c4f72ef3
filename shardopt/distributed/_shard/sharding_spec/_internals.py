"""torch.distributed._shard.sharding_spec._internals's path (C: csrc/shard/validate.c)."""
from shardopt.sharding_spec._internals import *  # noqa: F401,F403
