"""The two 4-rank scenarios of TestCustomShardingSpec (spec §8): a user-written grid spec
drives the ShardedTensor constructor, and ``_shard_tensor`` hands the work to the user
spec's own ``shard`` (which raises NotImplementedError here).  Gloo, ``rank:i/cpu``.
"""
from dataclasses import dataclass

import numpy as np

import shardopt as torch
from shardopt import sharded_tensor
from shardopt._remote_device import _remote_device
from shardopt.sharded_tensor import ShardedTensorMetadata
from shardopt.sharded_tensor._shard_chunk import _shard_tensor
from shardopt.sharding_spec import EnumerableShardingSpec, ShardingSpec, ShardMetadata
from shardopt.testing import ShardedTensorTestBase, with_comms


@dataclass
class BlockGrid(ShardingSpec):
    """A square 2-D grid: block (i, j) of a (n*b) x (n*b) tensor goes to placements[i*n+j].
    A dataclass, so that the copies exchanged by _shard_tensor's agreement check compare
    equal."""

    n: int
    placements: list

    def __post_init__(self):
        self.placements = [_remote_device(p) for p in self.placements]

    def build_metadata(self, tensor_sizes, tensor_properties):
        rows, cols = tensor_sizes
        b0, b1 = rows // self.n, cols // self.n
        shards = [ShardMetadata([i * b0, j * b1], [b0, b1], self.placements[i * self.n + j])
                  for i in range(self.n) for j in range(self.n)]
        return ShardedTensorMetadata(shards, tensor_sizes, tensor_properties)

    def shard(self, tensor, src_rank=0, process_group=None):
        raise NotImplementedError("BlockGrid cannot scatter yet")


class TestCustomShardingSpecMultiRank(ShardedTensorTestBase):
    @with_comms(init_rpc=False, backend="gloo")
    def test_custom_spec_constructor_and_shard_tensor(self):
        spec = BlockGrid(2, [f"rank:{r}/cpu" for r in range(4)])
        # ones(grid_spec, 4, 4): every rank holds its own 2x2 block of ones
        st = sharded_tensor.ones(spec, 4, 4)
        self.assertEqual(st.size(), torch.Size([4, 4]))
        self.assertIs(st.sharding_spec(), spec)
        shard = st.local_shards()[0]
        self.assertEqual(shard.tensor, torch.ones(2, 2))
        self.assertEqual(shard.metadata.shard_offsets, [self.rank // 2 * 2, self.rank % 2 * 2])
        out = torch.zeros(4, 4) if self.rank == 0 else None
        st.gather(0, out)
        if self.rank == 0:
            self.assertTrue((out.numpy() == np.ones((4, 4))).all())
        # the same layout written out explicitly is an equivalent Enumerable spec
        enum = EnumerableShardingSpec(st.metadata().shards_metadata)
        self.assertEqual(sharded_tensor.ones(enum, 4, 4).metadata(), st.metadata())
        # _shard_tensor defers to the user's shard()
        with self.assertRaisesRegex(NotImplementedError, "BlockGrid cannot scatter yet"):
            _shard_tensor(torch.rand(4, 4), spec)
