"""torch.distributed._shard.api's path (implementations: shardopt.sharded_tensor and
shardopt.sharding_plan)."""
from shardopt.sharded_tensor import _shard_tensor, load_with_process_group  # noqa: F401
from shardopt.sharded_tensor._shard_api import shard_parameter  # noqa: F401
from shardopt.sharded_tensor.api import _get_current_process_group  # noqa: F401
from shardopt.sharding_plan._apply import (  # noqa: F401
    _collect_local_shard,
    _reshard_output,
    shard_module,
)
from shardopt.sharding_plan import ShardingPlan  # noqa: F401
from shardopt.sharder import Sharder  # noqa: F401
from shardopt.sharding_spec import ChunkShardingSpec, ShardingSpec  # noqa: F401
from shardopt.sharded_tensor import ShardedTensor  # noqa: F401
