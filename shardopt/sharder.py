"""Sharder (torch.distributed._shard.sharder): the interface for sharding strategies that a
ShardingSpec cannot express.  A ``ShardingPlan`` maps a submodule's path to a Sharder;
``shard_module`` calls ``sharder.shard(submodule)`` and puts the returned module in its
place."""
import abc

__all__ = ["Sharder"]


class Sharder(abc.ABC):
    """Shards a whole module (for example a collection of embedding tables split across
    ranks by a user-defined rule) and returns the sharded replacement."""

    @abc.abstractmethod
    def shard(self, module):
        """Return the sharded version of ``module``.

        Args:
            module (:class:`shardopt.nn.Module`): the module to shard.

        Returns:
            A :class:`shardopt.nn.Module` that replaces ``module`` in its parent.
        """
