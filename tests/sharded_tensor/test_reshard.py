"""ShardedTensor.reshard on 4 Gloo ranks: every local shard after a reshard equals its slice
of the full tensor (a known arange, so any misplaced element shows), for dim changes,
placement permutations, uneven chunks (10 rows, 7 columns over 4 ranks), 3-D tensors and
round trips back to the first spec; the no-op case; torch's errors; gradients through a
reshard."""
import numpy as np

import shardopt as torch
import shardopt.distributed as dist
from shardopt import sharded_tensor
from shardopt.sharded_tensor.reshard import build_reshard_metadata, get_idx_from_placements
from shardopt.sharding_spec import ChunkShardingSpec, EnumerableShardingSpec, ShardMetadata
from shardopt.testing import ShardedTensorTestBase, TestCase, with_comms

gloo = with_comms(init_rpc=False, backend="gloo")


def spec(dim, ranks=(0, 1, 2, 3)):
    return ChunkShardingSpec(dim=dim, placements=[f"rank:{r}/cpu" for r in ranks])


def _full(shape, dtype=torch.float64):
    n = int(np.prod(shape))
    return torch.arange(0, n, dtype=dtype).reshape(shape)


def _filled(s, shape, dtype=torch.float64):
    st = sharded_tensor.empty(s, *shape, dtype=dtype)
    full = _full(shape, dtype).numpy()
    for shard in st.local_shards():
        # (an empty chunk's offset may lie past the end, as in torch: slice, not narrow)
        sl = tuple(slice(o, o + n) for o, n in zip(shard.metadata.shard_offsets,
                                                    shard.metadata.shard_sizes))
        shard.tensor.copy_(torch.from_numpy(full[sl].copy()))
    return st


class TestReshardHelpers(TestCase):
    def test_build_reshard_metadata_and_index(self):
        s = spec(1, (2, 0, 3, 1))
        mds, ranks = build_reshard_metadata(torch.Size([4, 10]), s, 4)
        self.assertEqual(ranks, [2, 0, 3, 1])
        # placement index i holds chunk i (3, 3, 3, 1 columns); the list is by rank
        self.assertEqual([md.shard_offsets for md in mds], [[0, 3], [0, 9], [0, 0], [0, 6]])
        self.assertEqual([md.shard_sizes for md in mds], [[4, 3], [4, 1], [4, 3], [4, 3]])
        self.assertEqual(get_idx_from_placements(s.placements, 3), 2)
        with self.assertRaisesRegex(RuntimeError, "current_rank not in the placement."):
            get_idx_from_placements(s.placements, 7)


class TestReshard(ShardedTensorTestBase):
    def _check(self, st, shape, dtype=torch.float64):
        full = _full(shape, dtype).numpy()
        (shard,) = st.local_shards()
        sl = tuple(slice(o, o + n) for o, n in zip(shard.metadata.shard_offsets,
                                                    shard.metadata.shard_sizes))
        np.testing.assert_array_equal(shard.tensor.numpy(), full[sl])
        self.assertTrue(shard.tensor.is_contiguous())
        self.assertEqual(shard.metadata.placement.rank(), self.rank)
        out = torch.empty(shape, dtype=dtype) if self.rank == 0 else None
        st.gather(0, out)
        if self.rank == 0:
            np.testing.assert_array_equal(out.numpy(), full)

    @gloo
    def test_reshard_moves_data(self):
        cases = [
            ((10, 7), spec(0), spec(1)),                          # dim change, uneven
            ((10, 7), spec(1), spec(0)),
            ((10, 7), spec(0), spec(0, (3, 1, 0, 2))),            # same dim, permuted
            ((10, 7), spec(1, (2, 0, 3, 1)), spec(0, (1, 3, 2, 0))),  # both change
            ((3, 5), spec(0), spec(1, (3, 2, 1, 0))),             # a rank with no rows
            ((4, 6, 5), spec(2), spec(1, (1, 0, 3, 2))),          # 3-D
            ((4, 6, 5), spec(0, (3, 2, 1, 0)), spec(2)),
        ]
        for shape, a, b in cases:
            st = _filled(a, shape)
            self._check(st, shape)
            self.assertIs(st.reshard(b), st)
            self.assertEqual(st.sharding_spec(), b)
            self.assertEqual(st.size(), torch.Size(shape))
            self._check(st, shape)
            st.reshard(a)  # and back
            self._check(st, shape)
        # other dtypes travel unchanged
        st = _filled(spec(0), (10, 7), torch.int64)
        st.reshard(spec(1, (3, 2, 1, 0)))
        self._check(st, (10, 7), torch.int64)

    @gloo
    def test_same_spec_is_a_noop(self):
        st = _filled(spec(0), (10, 7))
        before = st.local_shards()[0].tensor
        self.assertIs(st.reshard(spec(0)), st)
        self.assertIs(st.local_shards()[0].tensor, before)

    @gloo
    def test_errors(self):
        st = _filled(spec(0), (8, 8))
        grid = EnumerableShardingSpec([
            ShardMetadata(shard_offsets=[i, j], shard_sizes=[4, 4], placement=f"rank:{2 * (i // 4) + j // 4}/cpu")
            for i in (0, 4) for j in (0, 4)])
        with self.assertRaisesRegex(NotImplementedError, "Only ChunkShardingSpec supported for reshard."):
            st.reshard(grid)
        with self.assertRaisesRegex(NotImplementedError, "Only ChunkShardingSpec supported for reshard."):
            sharded_tensor.empty(grid, 8, 8).reshard(spec(0))
        # two chunks on rank 0 (8 placements over 4 ranks): several local shards
        st8 = sharded_tensor.empty(spec(0, (0, 1, 2, 3, 0, 1, 2, 3)), 8, 8)
        with self.assertRaisesRegex(NotImplementedError,
                                    "Only single local shard supported for reshard. Number of shards: 2"):
            st8.reshard(spec(1))
        with self.assertRaisesRegex(ValueError, "one chunk on each of the 4 ranks"):
            st.reshard(spec(1, (0, 1)))
        with self.assertRaisesRegex(ValueError, "out of range"):
            st.reshard(spec(2))
        self._check(st, (8, 8))  # untouched by the failed calls

    @gloo
    def test_gradient_flows_through_reshard(self):
        # each rank's loss is sum(local_after * c_rank); torch.distributed.nn semantics: the
        # gradient reaching the old shard is the matching slice of c over the SUM of losses
        shape = (10, 7)
        st = _filled(spec(0), shape)
        old = st.local_shards()[0].tensor
        old.requires_grad_(True)
        old_md = st.local_shards()[0].metadata
        st.reshard(spec(1, (1, 2, 3, 0)))
        new_shard = st.local_shards()[0]
        coef = np.random.RandomState(0).standard_normal(shape)
        o, n = new_shard.metadata.shard_offsets, new_shard.metadata.shard_sizes
        c = torch.from_numpy(coef[o[0]:o[0] + n[0], o[1]:o[1] + n[1]].copy())
        (new_shard.tensor * c).sum().backward()
        o, n = old_md.shard_offsets, old_md.shard_sizes
        np.testing.assert_allclose(old.grad.numpy(), coef[o[0]:o[0] + n[0], o[1]:o[1] + n[1]],
                                   rtol=1e-14)
