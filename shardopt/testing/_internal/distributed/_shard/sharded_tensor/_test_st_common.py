"""Models and spec lists of torch's ShardedTensor tests
(torch.testing._internal.distributed._shard.sharded_tensor._test_st_common)."""
import copy
import random

import shardopt
from shardopt import sharded_tensor
from shardopt.sharding_spec import ChunkShardingSpec

from .._device import TEST_RANKS, placement

__all__ = ["PLACEMENTS", "DEFAULT_GPU_NUM", "_chunk_sharding_specs_list_for_test",
           "MyShardedModel1", "MyShardedModel2"]

PLACEMENTS = [placement(r) for r in range(TEST_RANKS)]
DEFAULT_GPU_NUM = TEST_RANKS


def _chunk_sharding_specs_list_for_test(sharding_dims, seed=0):
    """One ChunkShardingSpec per entry of ``sharding_dims``, its placements shuffled with
    ``random.Random(seed + i)`` (each shuffle continues from the previous order, as torch)."""
    specs = []
    for i, dim in enumerate(sharding_dims):
        random.Random(seed + i).shuffle(PLACEMENTS)
        specs.append(ChunkShardingSpec(dim=dim, placements=copy.deepcopy(PLACEMENTS)))
    return specs


class MyShardedModel2(shardopt.nn.Module):
    def __init__(self, spec=None, group=None, init_rrefs=True) -> None:
        super().__init__()
        if spec is not None:
            self.sharded_tensor2 = sharded_tensor.rand(spec, 10, 20, process_group=group,
                                                       init_rrefs=init_rrefs)
        else:
            self.sharded_tensor2 = None
        self.random_tensor2 = shardopt.nn.Parameter(shardopt.rand(2, 2))


class MyShardedModel1(shardopt.nn.Module):
    def __init__(self, spec=None, group=None, init_rrefs=True) -> None:
        super().__init__()
        if spec is not None:
            self.sharded_tensor1 = sharded_tensor.rand(spec, 10, 20, process_group=group,
                                                       init_rrefs=init_rrefs)
        else:
            self.sharded_tensor1 = None
        self.random_tensor1 = shardopt.nn.Parameter(shardopt.rand(2, 2))
        self.submodule = MyShardedModel2(spec, group, init_rrefs)
