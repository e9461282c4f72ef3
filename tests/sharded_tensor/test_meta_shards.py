"""ShardedTensors whose local shards live on the meta device, on 4 Gloo ranks.

A meta shard carries dtype and geometry but no data, as in torch: building a ShardedTensor
from meta shards (also over sub-groups made with use_local_synchronization=True) only
exchanges metadata, so it works; placements say ``rank:i/meta``; moving the data anywhere
(gather, .cpu()) raises NotImplementedError on every rank instead of crashing or hanging.
"""
import shardopt as torch
import shardopt.distributed as dist
from shardopt import sharded_tensor
from shardopt.sharded_tensor import Shard, ShardedTensor, ShardMetadata
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, run_tests, with_comms

gloo = with_comms(init_rpc=False, backend="gloo")


class TestMetaShards(ShardedTensorTestBase):
    @gloo
    def test_meta_shards_on_local_sync_subgroups(self):
        # ranks {0, 2} and {1, 3} each hold a 6-element tensor in two meta halves
        members = [r for r in range(4) if r % 2 == self.rank % 2]
        sub = dist.new_group(members, backend="gloo", use_local_synchronization=True)
        dist.barrier(sub)
        local = torch.tensor([1, 2, 3], device="meta")
        self.assertTrue(local.is_meta)
        md = ShardMetadata(shard_offsets=[3 * (self.rank // 2)], shard_sizes=[3],
                           placement=f"rank:{self.rank}/meta")
        st = ShardedTensor._init_from_local_shards([Shard(tensor=local, metadata=md)], 6,
                                                   process_group=sub)
        self.assertEqual(st.size(), torch.Size([6]))
        self.assertEqual(st.dtype, torch.int64)
        self.assertFalse(st.is_pinned())
        self.assertTrue(st.local_tensor().is_meta)
        placements = [str(m.placement) for m in st.metadata().shards_metadata]
        self.assertEqual(placements, [f"rank:{r}/meta" for r in members])
        self.assertEqual([m.shard_offsets for m in st.metadata().shards_metadata], [[0], [3]])
        # a meta shard under a cpu placement is a device mismatch, reported as in torch
        bad = ShardMetadata([3 * (self.rank // 2)], [3], f"rank:{self.rank}/cpu")
        with self.assertRaisesRegex(ValueError, "device"):
            ShardedTensor._init_from_local_shards([Shard(local, bad)], 6, process_group=sub)

    @gloo
    def test_meta_placements_allocate_meta_shards(self):
        spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/meta" for r in range(4)])
        st = sharded_tensor.empty(spec, 10, 3, dtype=torch.float64)
        (shard,) = st.local_shards()
        self.assertTrue(shard.tensor.is_meta)
        self.assertEqual(shard.tensor.dtype, torch.float64)
        self.assertEqual(shard.tensor.shape, torch.Size([3 if self.rank < 3 else 1, 3]))
        self.assertEqual(shard.tensor.device, torch.device("meta"))
        # geometry-only work on the local shard stays on meta
        self.assertTrue(shard.tensor.t().reshape(-1).is_meta)
        # there is no data to move: every rank raises, nobody waits for a peer
        with self.assertRaisesRegex(NotImplementedError, "meta"):
            st.local_tensor().cpu()
        out = torch.empty(10, 3, dtype=torch.float64) if self.rank == 0 else None
        with self.assertRaises(NotImplementedError):
            st.gather(0, out)
        # collectives refuse meta tensors by name
        with self.assertRaisesRegex(NotImplementedError, "meta"):
            dist.all_reduce(torch.empty(2, device="meta"))
        dist.barrier()


if __name__ == "__main__":
    run_tests()
