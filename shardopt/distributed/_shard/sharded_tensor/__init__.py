"""torch.distributed._shard.sharded_tensor's path (implementation: shardopt.sharded_tensor)."""
from shardopt.sharded_tensor import *  # noqa: F401,F403
from shardopt.sharded_tensor import _sharded_op_impl, _shard_tensor  # noqa: F401
from shardopt._C import ShardMetadata  # noqa: F401
from . import api, logger, metadata, shard, utils  # noqa: F401


def __getattr__(name):
    # reshard is built in shardopt.sharded_tensor.reshard; import it only when asked for
    if name == "reshard":
        import importlib  # noqa: PLC0415
        return importlib.import_module(f"{__name__}.reshard")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
