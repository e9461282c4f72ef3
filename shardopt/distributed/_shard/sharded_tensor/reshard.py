"""torch.distributed._shard.sharded_tensor.reshard's path: ``reshuffle_local_shard`` and
``reshard_local_shard`` are implemented in shardopt.sharded_tensor.reshard; they are looked
up there when first used, so this path imports even where that module is absent."""
import importlib

__all__ = ["reshuffle_local_shard", "reshard_local_shard"]


def _impl(name):
    try:
        mod = importlib.import_module("shardopt.sharded_tensor.reshard")
    except ModuleNotFoundError as e:
        if e.name != "shardopt.sharded_tensor.reshard":
            raise
        raise NotImplementedError(
            f"{name}: shardopt.sharded_tensor.reshard is not part of this build") from None
    return getattr(mod, name)


def __getattr__(name):
    if name in __all__:
        return _impl(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
