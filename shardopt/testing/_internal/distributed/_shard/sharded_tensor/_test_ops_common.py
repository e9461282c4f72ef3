"""Spec generators and helpers of torch's sharded-op tests
(torch.testing._internal.distributed._shard.sharded_tensor._test_ops_common).  Placements are
on cuda when each of the 4 ranks has a GPU, else on cpu."""
import builtins

import shardopt
from shardopt.sharding_spec import ChunkShardingSpec, EnumerableShardingSpec, ShardMetadata
from shardopt.sharding_spec._internals import get_chunked_dim_size, get_split_size

from .._device import placement

__all__ = ["generate_chunk_sharding_specs_for_test", "generate_enumerable_sharding_specs_for_test",
           "generate_local_weight_sharding_params_for_test", "clone_module_parameter",
           "gen_binary_op_func"]


def generate_chunk_sharding_specs_for_test(sharding_dim):
    """Three ChunkShardingSpecs on ``sharding_dim`` over ranks 0..3 in the rotations
    (0,1,2,3), (2,3,0,1) and (3,0,1,2)."""
    orders = [(0, 1, 2, 3), (2, 3, 0, 1), (3, 0, 1, 2)]
    return [ChunkShardingSpec(dim=sharding_dim, placements=[placement(r) for r in order])
            for order in orders]


def generate_enumerable_sharding_specs_for_test():
    """One EnumerableShardingSpec: a 10x10 tensor as four 5x5 blocks, ranks 0..3 at
    (0,0), (5,0), (0,5), (5,5)."""
    offsets = [(0, 0), (5, 0), (0, 5), (5, 5)]
    return [EnumerableShardingSpec([
        ShardMetadata(shard_offsets=list(off), shard_sizes=[5, 5], placement=placement(r))
        for r, off in enumerate(offsets)])]


def generate_local_weight_sharding_params_for_test(local_weight, sharded_dim, gpu_num, spec,
                                                   rank):
    """(start, length) along ``sharded_dim`` of ``rank``'s chunk of ``local_weight`` under
    the chunk rule of ``spec`` over ``gpu_num`` chunks."""
    dim_size = local_weight.size(sharded_dim)
    split_size = get_split_size(dim_size, gpu_num)
    offset = 0
    start_pos, chunk_size = 0, 0
    for idx, pl in enumerate(spec.placements):
        chunk_size = get_chunked_dim_size(dim_size, split_size, idx)
        if pl.rank() == rank:
            start_pos = offset
            break
        offset += chunk_size
    return start_pos, chunk_size


def clone_module_parameter(module, param_name):
    """A detached copy of ``module.<param_name>`` as a new Parameter."""
    return shardopt.nn.Parameter(getattr(module, param_name).detach().clone())


def gen_binary_op_func(python_op, inplace=False):
    """A function ``f(lhs, rhs)`` applying ``python_op``: a ``torch.<name>`` function name
    (``torch`` is shardopt here), an operator such as "+" or, with ``inplace``, its
    augmented form."""
    if "torch" in python_op:
        body = f"  return {python_op}(lhs, rhs)\n"
    elif inplace:
        body = f"  lhs {python_op}= rhs\n  return lhs\n"
    else:
        body = f"  return lhs {python_op} rhs\n"
    namespace = {"torch": shardopt}
    builtins.exec("def f(lhs, rhs):\n" + body, namespace)
    return namespace["f"]
