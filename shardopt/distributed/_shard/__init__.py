"""torch.distributed._shard's module paths, so that torch code ports by changing its import
lines.  Every module under this package only re-exports the implementation that lives at
shardopt's short paths (shardopt.sharded_tensor, shardopt.sharding_spec,
shardopt.sharded_optim, shardopt.sharding_plan, shardopt.sharder)."""
from .api import _shard_tensor, load_with_process_group, shard_module, shard_parameter

__all__ = ["_shard_tensor", "load_with_process_group", "shard_module", "shard_parameter"]
