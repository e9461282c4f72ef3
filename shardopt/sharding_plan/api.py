"""ShardingPlan and ShardingPlanner (torch.distributed._shard.sharding_plan.api).

A plan says how ``shard_module`` shards a module: ``plan`` maps a parameter path
("fc1.weight") to a ShardingSpec or a submodule path ("ebc") to a Sharder;
``output_plan`` maps a submodule path ("" = the root) to the ShardingSpec its ShardedTensor
output is resharded to; ``return_local_tensor`` lists submodules whose ShardedTensor output is
replaced by this rank's local tensor (back to data-parallel form).
"""
import abc
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

from ..sharder import Sharder
from ..sharding_spec import ShardingSpec

__all__ = ["ShardingPlan", "ShardingPlanner"]


@dataclass
class ShardingPlan:
    """How to shard a module (see the module docstring).

    Args:
        plan (Dict[str, Union[ShardingSpec, Sharder]]): parameter path -> ShardingSpec, or
            submodule path -> Sharder.
        output_plan (Dict[str, ShardingSpec], optional): submodule path -> the spec its
            ShardedTensor output is resharded to ("" is the root module). Default: None.
        return_local_tensor (List[str], optional): submodule paths whose ShardedTensor output
            is returned as the local tensor. Default: None.
    """

    plan: Dict[str, Union[ShardingSpec, Sharder]]
    output_plan: Optional[Dict[str, ShardingSpec]] = None
    return_local_tensor: Optional[List[str]] = None


class ShardingPlanner(abc.ABC):
    """Builds a ShardingPlan for a module; subclass it for automatic sharding strategies."""

    @abc.abstractmethod
    def build_plan(self, module) -> ShardingPlan:
        """Return the ShardingPlan that shards ``module``.

        Args:
            module (:class:`shardopt.nn.Module`): the module to shard.
        """
