"""Sharded factories refuse global sizes no tensor could have (a negative dimension, an
element count overflowing int64) on every rank, rather than building a ShardedTensor whose
size() lies.  torch 2.13's sharded factories accept ones(spec, -1, 0, 0) and report size
(-1, 0, 0); shardopt raises the error torch's own factories raise for that size."""
import pytest

import shardopt as torch
from shardopt import sharded_tensor
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, run_tests, with_comms

gloo = with_comms(init_rpc=False, backend="gloo")


class TestFactorySizes(ShardedTensorTestBase):
    @property
    def world_size(self):
        return 2

    @gloo
    def test_negative_and_overflowing_sizes_raise(self):
        spec = ChunkShardingSpec(dim=0, placements=["rank:0/cpu", "rank:1/cpu"])
        for factory in (sharded_tensor.ones, sharded_tensor.zeros, sharded_tensor.empty,
                        sharded_tensor.rand):
            with self.assertRaisesRegex(
                    RuntimeError,
                    r"^Trying to create tensor with negative dimension -1: \[-1, 0, 0\]$"):
                factory(spec, -1, 0, 0)
            with self.assertRaisesRegex(RuntimeError, "negative dimension -3"):
                factory(spec, 4, -3)
            with self.assertRaisesRegex(RuntimeError, "^numel: integer multiplication overflow$"):
                factory(spec, 2 ** 32, 2 ** 32, 2 ** 32)
            with self.assertRaisesRegex(RuntimeError, "^numel: integer multiplication overflow$"):
                factory(spec, 2 ** 32, 2 ** 32, 0)
        with self.assertRaisesRegex(RuntimeError, "negative dimension"):
            sharded_tensor.full(spec, (2, -1), 1.0)
        # the edge that is fine stays fine
        st = sharded_tensor.zeros(spec, 4, 0)
        self.assertEqual(st.size(), torch.Size([4, 0]))


if __name__ == "__main__":
    run_tests()
