"""Tensor methods that act on each local shard of a ShardedTensor (torch's
sharded_tensor/_ops/tensor_ops.py): ``contiguous`` here; clone / detach / requires_grad_ /
is_pinned / equal / allclose / nn.init are covered in test_sharded_tensor.py."""
import numpy as np

import shardopt as torch
from shardopt import sharded_tensor
from shardopt.sharded_tensor import ShardedTensor
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, with_comms

gloo = with_comms(init_rpc=False, backend="gloo")


class TestTensorOps(ShardedTensorTestBase):
    @gloo
    def test_contiguous(self):
        spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(4)])
        st = sharded_tensor.rand(spec, 12, 6, dtype=torch.float64)
        # make the local shard a non-contiguous view with the same values
        (shard,) = st.local_shards()
        vals = shard.tensor.numpy().copy()
        shard.tensor = torch.from_numpy(vals.T.copy()).t()
        self.assertFalse(shard.tensor.is_contiguous())
        c = st.contiguous()
        self.assertIsInstance(c, ShardedTensor)
        self.assertIsNot(c, st)
        self.assertTrue(c.local_tensor().is_contiguous())
        np.testing.assert_array_equal(c.local_tensor().numpy(), vals)
        self.assertEqual(c.metadata(), st.metadata())
        self.assertEqual(c.sharding_spec(), st.sharding_spec())
        self.assertTrue(c.equal(st))
        with self.assertRaisesRegex(RuntimeError, "Only support torch.contiguous_format"):
            st.contiguous(memory_format=torch.channels_last)
