"""ShardedTensor tests, written from the scenario list of the behaviour spec (§4, §8
"test_sharded_tensor.py") on 4 Gloo ranks with ``rank:i/cpu`` placements.

Several spec scenarios that share a setup run inside one spawned test (spawning 4 ranks is
the expensive part); each block says which scenario it covers.  The RPC scenarios
(remote shards, worker names) are in test_remote_shards.py; here ``init_rrefs=True`` and
worker names without RPC are checked to raise torch's errors.
CUDA/NCCL variants run only with 4 GPUs.
Extras beyond the spec list: uneven shapes (21x10, 2x20), float64/int64 gather exactness,
zero-element shards, and bad init_from_local_shards input on ONE rank making every rank
raise within a bounded time.
"""
import copy
import io
import pickle
import time
import warnings

import numpy as np

import shardopt as torch
import shardopt.distributed as dist
from shardopt import sharded_tensor
from shardopt.sharded_tensor import (
    Shard,
    ShardedTensor,
    ShardedTensorBase,
    ShardedTensorMetadata,
    TensorProperties,
    custom_sharded_op_impl,
    load_with_process_group,
    pre_load_state_dict_hook,
    state_dict_hook,
)
from shardopt.sharded_tensor._shard_chunk import _shard_tensor
from shardopt.sharding_spec import (
    ChunkShardingSpec,
    EnumerableShardingSpec,
    ShardMetadata,
    custom_sharding_spec_op,
)
from shardopt.testing import (
    ShardedTensorTestBase,
    TestCase,
    requires_nccl,
    skip_if_lt_x_gpu,
    with_comms,
)

gloo = with_comms(init_rpc=False, backend="gloo")


def cpu_placements(ranks=range(4)):
    return [f"rank:{r}/cpu" for r in ranks]


def row_spec(ranks=range(4), dim=0):
    return ChunkShardingSpec(dim=dim, placements=cpu_placements(ranks))


def grid_spec_10x10():
    return EnumerableShardingSpec([
        ShardMetadata([0, 0], [5, 5], "rank:0/cpu"),
        ShardMetadata([0, 5], [5, 5], "rank:1/cpu"),
        ShardMetadata([5, 0], [5, 5], "rank:2/cpu"),
        ShardMetadata([5, 5], [5, 5], "rank:3/cpu"),
    ])


def arange(shape, dtype=torch.float32):
    n = int(np.prod(shape))
    return torch.from_numpy(np.arange(n).reshape(shape)).to(dtype)


def np_of(t):
    t = t.detach() if hasattr(t, "detach") else t._alias()
    return t.cpu().contiguous().numpy()


# ---------------------------------------------------------------------------------------
# single-process tests (no process group needed)
# ---------------------------------------------------------------------------------------

class TestShardedTensorMetadataPickle(TestCase):
    def test_metadata_round_trip_over_properties(self):
        # spec §8 TestShardedTensorMetadata: pickle round-trip over property combinations
        for dtype in (torch.float32, torch.float64, torch.int32):
            for rg in (False, True):
                for mf in (torch.contiguous_format, torch.channels_last, torch.preserve_format):
                    for pin in (False, True):
                        props = TensorProperties(dtype=dtype, layout=torch.strided,
                                                 requires_grad=rg, memory_format=mf,
                                                 pin_memory=pin)
                        md = ShardedTensorMetadata(
                            [ShardMetadata([0, 0], [5, 5], "rank:0/cpu"),
                             ShardMetadata([5, 0], [5, 5], "rank:1/cpu")],
                            torch.Size([10, 5]), props)
                        back = pickle.loads(pickle.dumps(md))
                        self.assertEqual(md, back)


class TestNoProcessGroupMode(TestCase):
    def _four_shards(self, contiguous=True):
        full = arange((10, 10))
        shards = []
        for r, (o0, o1) in enumerate([(0, 0), (0, 5), (5, 0), (5, 5)]):
            t = full.narrow(0, o0, 5).narrow(1, o1, 5)
            if contiguous:
                t = t.contiguous()
            shards.append(Shard(t, ShardMetadata([o0, o1], [5, 5], f"rank:{r}/cpu")))
        md = ShardedTensorMetadata([s.metadata for s in shards], torch.Size([10, 10]),
                                   TensorProperties(dtype=torch.float32))
        return shards, md

    def test_base_init_all_shards_in_one_process(self):
        # spec §8 test_st_base_init_from_local_shards_and_global_metadata / NoProcessGroupMode
        shards, md = self._four_shards()
        st = ShardedTensorBase._init_from_local_shards_and_global_metadata(shards, md)
        self.assertEqual(len(st.local_shards()), 4)
        self.assertIs(st.metadata(), md)
        self.assertEqual(st.size(), torch.Size([10, 10]))
        self.assertIsInstance(st.sharding_spec(), EnumerableShardingSpec)
        self.assertNotIsInstance(st, ShardedTensor)
        for shard in st.local_shards():
            o0, o1 = shard.metadata.shard_offsets
            self.assertTrue(np.array_equal(np_of(shard.tensor),
                                           np.arange(100).reshape(10, 10)[o0:o0 + 5, o1:o1 + 5]))

    def test_base_accepts_non_contiguous_shards(self):
        shards, md = self._four_shards(contiguous=False)
        self.assertFalse(shards[0].tensor.is_contiguous())
        st = ShardedTensorBase._init_from_local_shards_and_global_metadata(shards, md)
        self.assertEqual(len(st.local_shards()), 4)

    def test_base_checks_overlap_and_coverage(self):
        shards, md = self._four_shards()
        md.shards_metadata[1] = ShardMetadata([0, 4], [5, 5], "rank:1/cpu")
        with self.assertRaisesRegex(ValueError, "overlap"):
            ShardedTensorBase._init_from_local_shards_and_global_metadata(shards, md)
        shards, md = self._four_shards()
        md.size = torch.Size([10, 12])
        with self.assertRaisesRegex(ValueError, "do not cover the entire tensor"):
            ShardedTensorBase._init_from_local_shards_and_global_metadata(shards, md)

    def test_custom_op_signature_errors(self):
        # spec §8 test_custom_op_errors
        with self.assertRaisesRegex(TypeError, "expects signature"):
            @custom_sharded_op_impl(torch.sqrt)
            def five(types, args, kwargs, process_group, extra):
                pass
        with self.assertRaisesRegex(TypeError, "expects signature"):
            @custom_sharded_op_impl(torch.sqrt)
            def one(types):
                pass

    def test_shard_with_no_placement(self):
        # spec §8 test_create_shard_with_no_placement
        md = ShardMetadata([0], [10])
        shard = Shard(torch.zeros(10), md)
        self.assertIsNone(shard.metadata.placement)

    def test_scatter_pieces_copy_at_most_once(self):
        # issue 8 item 6: the source rank sends views of the tensor where it can (full,
        # contiguous chunks), and copies a chunk once, straight into a padded buffer, where
        # it cannot (a short trailing chunk, a chunk along another dim)
        from shardopt.sharded_tensor._shard_chunk import _scatter_piece
        full = arange((10, 6))
        ref = np.arange(60, dtype=np.float32).reshape(10, 6)
        mds = row_spec().build_metadata(full.size(), TensorProperties()).shards_metadata
        n = 3 * 6  # split 3 along dim 0
        for r, md in enumerate(mds):
            piece = _scatter_piece(full, 0, md, n)
            self.assertEqual(tuple(piece.shape), (n,))
            k = md.shard_sizes[0] * 6
            self.assertTrue(np.array_equal(np_of(piece)[:k], ref[3 * r:3 * r + md.shard_sizes[0]]
                                           .reshape(-1)))
            if md.shard_sizes[0] == 3:  # full chunk: a view of `full`, no copy
                self.assertEqual(piece.data_ptr(), full.data_ptr() + 4 * 18 * r)
            else:  # rank 3 holds 1 row: copied into its own padded buffer
                self.assertNotEqual(piece.data_ptr(), full.data_ptr() + 4 * 18 * r)
        cols = row_spec(dim=1).build_metadata(full.size(), TensorProperties()).shards_metadata
        for r, md in enumerate(cols):
            piece = _scatter_piece(full, 1, md, 10 * 2)
            w = md.shard_sizes[1]
            got = np_of(piece)[:10 * w].reshape(10, w)
            self.assertTrue(np.array_equal(got, ref[:, 2 * r:2 * r + w]))

    def test_constructor_without_process_group_fails_cleanly(self):
        with self.assertRaisesRegex(ValueError, "Default process group has not been initialized"):
            sharded_tensor.empty(row_spec(), 10, 20)


# ---------------------------------------------------------------------------------------
# 4-rank tests
# ---------------------------------------------------------------------------------------

class TestShardedTensorChunked(ShardedTensorTestBase):
    @gloo
    def test_metadata_sizes_and_accessors(self):
        spec = row_spec()
        # test_sharded_tensor_metadata: defaults and properties
        st = sharded_tensor.empty(spec, 10, 20)
        md = st.metadata()
        self.assertIs(md, st.metadata())
        self.assertEqual(md.size, torch.Size([10, 20]))
        self.assertEqual(st.size(), torch.Size([10, 20]))
        self.assertEqual(st.shape, torch.Size([10, 20]))
        self.assertEqual(md.tensor_properties.dtype, torch.get_default_dtype())
        self.assertEqual(st.dtype, torch.float32)
        self.assertEqual(st.layout, torch.strided)
        self.assertFalse(st.requires_grad)
        self.assertTrue(st.is_contiguous())
        self.assertFalse(st.is_pinned())
        self.assertTrue(st.is_floating_point())
        self.assertIsNone(st.grad)
        self.assertIsNone(st.grad_fn)
        self.assertTrue(st.is_leaf)
        self.assertEqual(st.device, torch.device("cpu"))
        self.assertEqual(hash(st), id(st))
        self.assertTrue(repr(st).startswith("ShardedTensor(ShardedTensorMetadata("))
        self.assertTrue(sharded_tensor.empty(spec, 10, 20, requires_grad=True).requires_grad)
        self.assertTrue(sharded_tensor.empty(spec, 10, 20, requires_grad=True)
                        .local_tensor().requires_grad)
        st64 = sharded_tensor.empty(spec, 10, 20, dtype=torch.double)
        self.assertEqual(st64.dtype, torch.float64)
        self.assertEqual(st64.local_tensor().dtype, torch.float64)
        self.assertTrue(sharded_tensor.empty(spec, 10, 20, pin_memory=True).is_pinned())
        with self.assertRaisesRegex(RuntimeError, "torch function '__set__'"):
            st.requires_grad = True
        with self.assertRaisesRegex(RuntimeError, "init_rrefs=False, no RRefs"):
            st.remote_shards()

        # test_complete_world_size (non-RPC part): dims 0 and -2 on 10x20
        for dim in (0, -2):
            st = sharded_tensor.empty(row_spec(dim=dim), 10, 20)
            shards = st.local_shards()
            self.assertEqual(len(shards), 1)
            expected_rows = 1 if self.rank == 3 else 3
            self.assertEqual(shards[0].tensor.size(), torch.Size([expected_rows, 20]))
            self.assertEqual(shards[0].metadata.shard_offsets, [3 * self.rank, 0])
            self.assertEqual(str(shards[0].metadata.placement), f"rank:{self.rank}/cpu")
            for r, smd in enumerate(st.metadata().shards_metadata):
                self.assertEqual(smd.shard_offsets, [3 * r, 0])
                self.assertEqual(smd.shard_sizes, [1 if r == 3 else 3, 20])
                self.assertEqual(str(smd.placement), f"rank:{r}/cpu")

        # test_sharding_columns: dims 1 and -1 on 10x32
        for dim in (1, -1):
            st = sharded_tensor.empty(row_spec(dim=dim), 10, 32)
            shard = st.local_shards()[0]
            self.assertEqual(shard.tensor.size(), torch.Size([10, 8]))
            self.assertEqual(shard.metadata.shard_offsets, [0, 8 * self.rank])

        # test_sharded_tensor_sizes: every way of giving the size
        for st in (sharded_tensor.empty(spec, 10, 20), sharded_tensor.empty(spec, [10, 20]),
                   sharded_tensor.empty(spec, (10, 20)),
                   sharded_tensor.empty(spec, torch.Size([10, 20]))):
            self.assertEqual(st.size(), torch.Size([10, 20]))
            self.assertEqual(st.size(0), 10)
            self.assertEqual(st.size(1), 20)
            self.assertEqual(st.size(-1), 20)
            self.assertEqual(st.size(-2), 10)
            self.assertEqual(st.dim(), 2)
            self.assertEqual(st.ndim, 2)
            with self.assertRaisesRegex(IndexError, "Dimension out of range"):
                st.size(-3)
            with self.assertRaisesRegex(IndexError, "Dimension out of range"):
                st.size(2)
        st = sharded_tensor.empty(spec, 10)
        self.assertEqual(st.size(), torch.Size([10]))
        self.assertEqual(st.dim(), 1)
        with self.assertRaisesRegex(TypeError, "size has to be a sequence of ints"):
            sharded_tensor.empty(spec, "foo")
        with self.assertRaisesRegex(TypeError, "size has to be a sequence of ints"):
            sharded_tensor.empty(spec, 10, 2.5)

        # test_local_tensor: 24x12 -> 6x12
        st = sharded_tensor.rand(spec, 24, 12)
        self.assertEqual(st.local_tensor().size(), torch.Size([6, 12]))
        self.assertIs(st.local_tensor(), st.local_shards()[0].tensor)
        # test_local_tensor_error: 10 placements with repeated ranks
        many = ChunkShardingSpec(0, cpu_placements([0, 0, 1, 1, 2, 2, 3, 3, 0, 1]))
        st = sharded_tensor.rand(many, 24, 12)
        with self.assertRaisesRegex(NotImplementedError, "Only single local shard is supported."):
            st.local_tensor()

        # test_insufficient_sharding_dims: 2x20 over 4 ranks
        st = sharded_tensor.empty(spec, 2, 20)
        shard = st.local_shards()[0]
        self.assertEqual(shard.metadata.shard_offsets, [self.rank, 0])
        if self.rank <= 1:
            self.assertEqual(shard.tensor.size(), torch.Size([1, 20]))
        else:
            self.assertEqual(shard.tensor.numel(), 0)
            self.assertEqual(shard.tensor.size(), torch.Size([0, 20]))
        mds = st.metadata().shards_metadata
        self.assertEqual(len(mds), 4)
        for r, smd in enumerate(mds):
            self.assertEqual(smd.shard_offsets, [r, 0])
            self.assertEqual(smd.shard_sizes, [1 if r <= 1 else 0, 20])

    @gloo
    def test_factories(self):
        spec = row_spec()
        # test_create_sharded_tensor_with_ones / zeros / full
        for factory, value in ((sharded_tensor.ones, 1.0), (sharded_tensor.zeros, 0.0)):
            st = factory(spec, 10, 20)
            t = st.local_tensor()
            self.assertEqual(t.size(), torch.Size([1 if self.rank == 3 else 3, 20]))
            self.assertTrue((np_of(t) == value).all())
        st = sharded_tensor.full(spec, (10, 20), 1234, dtype=torch.int32)
        self.assertEqual(st.dtype, torch.int32)
        self.assertEqual(st.local_tensor().dtype, torch.int32)
        self.assertTrue((np_of(st.local_tensor()) == 1234).all())
        st = sharded_tensor.ones(spec, 10, 20, requires_grad=True, dtype=torch.float64)
        self.assertTrue(st.local_tensor().requires_grad)
        self.assertEqual(st.local_tensor().dtype, torch.float64)

        # test_create_sharded_tensor_with_rand: per-rank, position-independent contract
        placements4x4 = ChunkShardingSpec(0, cpu_placements())
        for dtype in (torch.float32, torch.float64):
            torch.manual_seed(1234)
            st = sharded_tensor.rand(placements4x4, 8, 2, dtype=dtype)
            torch.manual_seed(1234)
            expected = torch.rand(2, 2, dtype=dtype)
            self.assertEqual(st.local_tensor(), expected)
            torch.manual_seed(1234)
            st = sharded_tensor.randn(placements4x4, 8, 2, dtype=dtype)
            torch.manual_seed(1234)
            self.assertEqual(st.local_tensor(), torch.randn(2, 2, dtype=dtype))
        # several local shards are filled in local order from one stream
        many = ChunkShardingSpec(0, cpu_placements([0, 1, 2, 3, 0, 1, 2, 3]))
        torch.manual_seed(7)
        st = sharded_tensor.rand(many, 16, 3)
        torch.manual_seed(7)
        a, b = torch.rand(2, 3), torch.rand(2, 3)
        self.assertEqual(st.local_shards()[0].tensor, a)
        self.assertEqual(st.local_shards()[1].tensor, b)
        vals = np_of(st.local_shards()[0].tensor)
        self.assertTrue(((vals >= 0) & (vals < 1)).all())

        # test_create_sharded_tensor_like on an 8x8 double tensor
        st = sharded_tensor.rand(spec, 8, 8, dtype=torch.double)
        like_empty = torch.empty_like(st, dtype=torch.double)
        self.assertIsInstance(like_empty, ShardedTensor)
        self.assertEqual(like_empty.size(), st.size())
        self.assertEqual(like_empty.metadata().shards_metadata, st.metadata().shards_metadata)
        for fn, value in ((torch.zeros_like, 0.0), (torch.ones_like, 1.0)):
            out = fn(st, dtype=torch.double)
            self.assertEqual(out.dtype, torch.float64)
            self.assertTrue((np_of(out.local_tensor()) == value).all())
        out = torch.full_like(st, 8.8, dtype=torch.double)
        self.assertTrue(np.allclose(np_of(out.local_tensor()), 8.8))
        torch.manual_seed(3)
        out = torch.rand_like(st, dtype=torch.double)
        torch.manual_seed(3)
        self.assertEqual(out.local_tensor(), torch.rand(2, 8, dtype=torch.double))
        torch.manual_seed(3)
        out = torch.randn_like(st, dtype=torch.double)
        torch.manual_seed(3)
        self.assertEqual(out.local_tensor(), torch.randn(2, 8, dtype=torch.double))

    @gloo
    def test_gather(self):
        # test_gather_even: ones 10x20 gathered to dst 1
        spec = row_spec()
        st = sharded_tensor.ones(spec, 10, 20)
        out = torch.full((10, 20), float("nan")) if self.rank == 1 else None
        st.gather(1, out)
        if self.rank == 1:
            self.assertEqual(out, torch.ones(10, 20))
        else:
            self.assertIsNone(out)

        # test_gather_uneven: 5 placements, ranks 0 and 2 hold two shards each
        uneven = ChunkShardingSpec(0, cpu_placements([0, 0, 1, 2, 2]))
        st = sharded_tensor.ones(uneven, 10, 20)
        out = torch.full((10, 20), float("nan")) if self.rank == 0 else None
        st.gather(0, out)
        if self.rank == 0:
            self.assertEqual(out, torch.ones(10, 20))

        # extras: exact values for float64 / int64 / uneven shapes / empty shards
        for shape, dtype, ranks in (((21, 10), torch.float64, range(4)),
                                    ((2, 20), torch.int64, range(4)),
                                    ((9, 12), torch.int64, range(4)),
                                    ((21, 10), torch.int64, [3, 1, 0, 2])):
            full = arange(shape, torch.float64)
            if dtype == torch.int64:
                # values above 2**24 catch any trip through float32
                full = torch.from_numpy(np.arange(int(np.prod(shape)), dtype=np.int64)
                                        .reshape(shape) + (1 << 40))
            spec = ChunkShardingSpec(0, cpu_placements(ranks))
            st = _shard_tensor(full.to(dtype).contiguous(), spec)
            for dst in (0, 3):
                out = torch.zeros(*shape, dtype=dtype) if self.rank == dst else None
                st.gather(dst, out)
                if self.rank == dst:
                    self.assertTrue(np.array_equal(np_of(out), np_of(full.to(dtype))),
                                    f"{shape} {dtype} dst={dst}")
        # every local shard empty on some ranks and everything empty everywhere
        st = sharded_tensor.zeros(row_spec(), 0, 5)
        out = torch.zeros(0, 5) if self.rank == 0 else None
        st.gather(0, out)
        # argument errors
        st = sharded_tensor.ones(row_spec(), 4, 4)
        if self.rank == 0:
            with self.assertRaisesRegex(ValueError, "must be specified on destination rank"):
                st.gather(0, None)
            with self.assertRaisesRegex(ValueError, "have size"):
                st.gather(0, torch.zeros(4, 5))
        else:
            with self.assertRaisesRegex(ValueError, "must NOT be specified on non-destination"):
                st.gather(0, torch.zeros(4, 4))

    @gloo
    def test_partial_world_new_group_and_multiple_shards(self):
        # test_partial_world_size: placements on ranks 2 and 3 only
        spec = ChunkShardingSpec(0, cpu_placements([2, 3]))
        st = sharded_tensor.empty(spec, 10, 20)
        if self.rank >= 2:
            self.assertEqual(len(st.local_shards()), 1)
            shard = st.local_shards()[0]
            self.assertEqual(shard.tensor.size(), torch.Size([5, 20]))
            self.assertEqual(shard.metadata.shard_offsets, [5 * (self.rank - 2), 0])
        else:
            self.assertEqual(len(st.local_shards()), 0)
            self.assertEqual(st.device, torch.device("cpu"))
        mds = st.metadata().shards_metadata
        self.assertEqual(len(mds), 2)
        for i, smd in enumerate(mds):
            self.assertEqual(smd.shard_offsets, [5 * i, 0])
            self.assertEqual(smd.shard_sizes, [5, 20])
            self.assertEqual(str(smd.placement), f"rank:{i + 2}/cpu")

        # test_new_group: pg {1,2,3}, placements on global ranks 2 and 3
        pg = dist.new_group(ranks=[1, 2, 3])
        st = sharded_tensor.empty(spec, 10, 20, process_group=pg)
        if self.rank >= 2:
            self.assertEqual(st.local_shards()[0].metadata.shard_offsets,
                             [5 * (self.rank - 2), 0])
        else:
            self.assertEqual(len(st.local_shards()), 0)
        if self.rank != 0:
            with self.assertRaisesRegex(ValueError,
                                        "Global rank 0 does not exist in input process group"):
                sharded_tensor.empty(ChunkShardingSpec(0, cpu_placements([0, 2])), 10, 20,
                                     process_group=pg)

        # test_multiple_local_shards: 8 placements cycling ranks
        spec = ChunkShardingSpec(0, cpu_placements([0, 1, 2, 3, 0, 1, 2, 3]))
        st = sharded_tensor.empty(spec, 16, 20)
        shards = st.local_shards()
        self.assertEqual(len(shards), 2)
        for i, shard in enumerate(shards):
            self.assertEqual(shard.tensor.size(), torch.Size([2, 20]))
            self.assertEqual(shard.metadata.shard_offsets, [2 * (self.rank + 4 * i), 0])
        for i, smd in enumerate(st.metadata().shards_metadata):
            self.assertEqual(smd.shard_offsets, [2 * i, 0])

        # test_sub_process_group_placement_validation: parity sub-groups, global ranks
        evens, odds = dist.new_group([0, 2]), dist.new_group([1, 3])
        mine = evens if self.rank % 2 == 0 else odds
        members = [0, 2] if self.rank % 2 == 0 else [1, 3]
        st = sharded_tensor.ones(ChunkShardingSpec(0, cpu_placements(members)), 6, 2,
                                 process_group=mine)
        self.assertEqual(st.local_shards()[0].metadata.shard_offsets,
                         [3 * members.index(self.rank), 0])
        other = [1, 3] if self.rank % 2 == 0 else [0, 2]
        with self.assertRaisesRegex(ValueError, "does not exist in input process group"):
            sharded_tensor.ones(ChunkShardingSpec(0, cpu_placements(other)), 6, 2,
                                process_group=mine)
        # init_from_local_shards on the parity sub-groups, global size 6
        shard = Shard.from_tensor_and_offsets(torch.ones(3, 2), [3 * members.index(self.rank), 0],
                                              self.rank)
        st = sharded_tensor.init_from_local_shards([shard], 6, 2, process_group=mine)
        self.assertEqual(st.size(), torch.Size([6, 2]))
        self.assertIs(st._process_group, mine)

    @gloo
    def test_invalid_sharding(self):
        with self.assertRaisesRegex(NotImplementedError, "does not support named dimension"):
            ChunkShardingSpec(dim="H", placements=cpu_placements())
        for dim in (2, 3, 4, -3, -4, -5):
            with self.assertRaisesRegex(ValueError, "Invalid sharding dim"):
                sharded_tensor.empty(row_spec(dim=dim), 10, 20)
        spec = ChunkShardingSpec(0, ["rank:1/cpu", "rank:5/cpu"])
        with self.assertRaisesRegex(ValueError, "Global rank 5 does not exist in input"):
            sharded_tensor.empty(spec, 10, 20)
        st = sharded_tensor.rand(row_spec(), 10, 20)
        tensor = torch.rand(10, 20)
        with self.assertRaisesRegex(RuntimeError, "torch function 'add'[\\s\\S]*not supported for "
                                                  "ShardedTensor!"):
            torch.add(st, tensor)
        with self.assertRaisesRegex(RuntimeError, "not supported for ShardedTensor!"):
            st.sqrt()
        with self.assertRaisesRegex(ValueError, "Only torch.strided layout is currently "
                                                "supported"):
            sharded_tensor.empty(row_spec(), 10, 20, layout=torch.sparse_coo)
        with self.assertRaisesRegex(ValueError, "Only torch.contiguous_format memory_format"):
            sharded_tensor.empty(row_spec(), 10, 20, memory_format=torch.channels_last)
        with self.assertRaisesRegex(RuntimeError, "RPC framework needs to be initialized"):
            sharded_tensor.empty(ChunkShardingSpec(0, ["worker0/cpu", "worker1/cpu"]), 10, 20)
        with self.assertRaisesRegex(RuntimeError, "RPC Framework needs to be initialized using"):
            sharded_tensor.empty(row_spec(), 10, 20, init_rrefs=True)
        with self.assertRaisesRegex(RuntimeError, "no RRefs to remote shards available"):
            st.remote_shards()
        # deviation §12.5: rank-less placements are rejected by tensor-creating calls
        with self.assertRaisesRegex(ValueError, "has no rank"):
            sharded_tensor.empty(ChunkShardingSpec(0, ["cpu", "cpu"]), 10, 20)
        with self.assertRaisesRegex(ValueError, "Expecting ShardingSpec but got"):
            sharded_tensor.empty("not a spec", 10, 20)
        # test_shard_metadata_init: a None placement and a parsed string placement
        md = ShardMetadata([0], [10], None)
        with self.assertRaisesRegex(ValueError, "remote device is None"):
            ShardedTensor._init_from_local_shards_and_global_metadata(
                [], ShardedTensorMetadata([md], torch.Size([10]), TensorProperties()))
        md = ShardMetadata([0], [10], "rank:0/cpu")
        self.assertEqual(md.placement.rank(), 0)
        self.assertEqual(md.placement.device(), torch.device("cpu"))


class TestShardedTensorEnumerable(ShardedTensorTestBase):
    @gloo
    def test_grid_metadata_ones_gather_and_uneven(self):
        spec = grid_spec_10x10()
        # test_sharded_tensor_metadata
        st = sharded_tensor.empty(spec, 10, 10, init_rrefs=False)
        self.assertEqual(st.size(), torch.Size([10, 10]))
        self.assertEqual(st.dtype, torch.float32)
        self.assertFalse(st.is_pinned())
        self.assertTrue(sharded_tensor.empty(spec, 10, 10, pin_memory=True).is_pinned())
        # test_grid_sharding (non-RPC part)
        shard = st.local_shards()[0]
        self.assertEqual(shard.tensor.size(), torch.Size([5, 5]))
        self.assertEqual(shard.metadata.shard_offsets, [self.rank // 2 * 5, self.rank % 2 * 5])
        self.assertEqual(st.metadata().shards_metadata, spec.shards)
        # test_create_sharded_tensor_with_ones
        st = sharded_tensor.ones(spec, 10, 10)
        self.assertEqual(st.local_tensor(), torch.ones(5, 5))
        # test_gather_even: dst 0
        out = torch.full((10, 10), float("nan")) if self.rank == 0 else None
        st.gather(0, out)
        if self.rank == 0:
            self.assertEqual(out, torch.ones(10, 10))
        # test_gather_uneven: rank 0 has two shards, rank 2 none
        uneven = EnumerableShardingSpec([
            ShardMetadata([0, 0], [5, 5], "rank:0/cpu"),
            ShardMetadata([0, 5], [5, 5], "rank:1/cpu"),
            ShardMetadata([5, 0], [5, 5], "rank:0/cpu"),
            ShardMetadata([5, 5], [5, 5], "rank:3/cpu"),
        ])
        st = sharded_tensor.empty(uneven, 10, 10, dtype=torch.float64)
        self.assertEqual(len(st.local_shards()), {0: 2, 1: 1, 2: 0, 3: 1}[self.rank])
        ref = np.arange(100, dtype=np.float64).reshape(10, 10)
        for shard in st.local_shards():
            o0, o1 = shard.metadata.shard_offsets
            shard.tensor.copy_(torch.from_numpy(ref[o0:o0 + 5, o1:o1 + 5].copy()))
        out = torch.zeros(10, 10, dtype=torch.float64) if self.rank == 3 else None
        st.gather(3, out)
        if self.rank == 3:
            self.assertTrue(np.array_equal(np_of(out), ref))
        # test_uneven_shards: 6x6 from 2x4, 4x2, 4x4 and 2x2 pieces
        spec = EnumerableShardingSpec([
            ShardMetadata([0, 0], [2, 4], "rank:0/cpu"),
            ShardMetadata([0, 4], [4, 2], "rank:1/cpu"),
            ShardMetadata([2, 0], [4, 4], "rank:2/cpu"),
            ShardMetadata([4, 4], [2, 2], "rank:3/cpu"),
        ])
        st = sharded_tensor.empty(spec, 6, 6)
        expected = {0: ([0, 0], [2, 4]), 1: ([0, 4], [4, 2]), 2: ([2, 0], [4, 4]),
                    3: ([4, 4], [2, 2])}[self.rank]
        shard = st.local_shards()[0]
        self.assertEqual(shard.metadata.shard_offsets, expected[0])
        self.assertEqual(list(shard.tensor.size()), expected[1])
        # multiple local shards / partial world with Enumerable specs
        spec = EnumerableShardingSpec([
            ShardMetadata([0, 0], [5, 5], "rank:2/cpu"),
            ShardMetadata([0, 5], [5, 5], "rank:3/cpu"),
            ShardMetadata([5, 0], [5, 5], "rank:2/cpu"),
            ShardMetadata([5, 5], [5, 5], "rank:3/cpu"),
        ])
        st = sharded_tensor.empty(spec, 10, 10)
        self.assertEqual(len(st.local_shards()), 2 if self.rank >= 2 else 0)

    @gloo
    def test_device_moves_and_copies(self):
        spec = row_spec()
        st = sharded_tensor.rand(spec, 8, 4)
        # test_sharded_tensor_to_cpu: already on cpu -> the same object
        self.assertIs(st.cpu(), st)
        with self.assertRaisesRegex(RuntimeError, "contiguous_format"):
            st.cpu(memory_format=torch.channels_last)
        # test_sharded_tensor_to_test (cpu forms)
        self.assertIs(st.to("cpu"), st)
        self.assertIs(st.to(torch.device("cpu")), st)
        self.assertIs(st.to(device=torch.device("cpu")), st)
        self.assertIs(st.to(torch.float32), st)
        half = st.to(torch.float16)
        self.assertIsNot(half, st)
        self.assertEqual(half.dtype, torch.float16)
        self.assertEqual(half.local_tensor().dtype, torch.float16)
        self.assertIsInstance(half.sharding_spec(), ChunkShardingSpec)
        self.assertEqual(half.sharding_spec(), spec)
        self.assertTrue(np.allclose(np_of(half.local_tensor()).astype(np.float32),
                                    np_of(st.local_tensor()), atol=1e-3))
        pair = st.to("cpu", torch.float16)
        self.assertEqual(pair.dtype, torch.float16)
        like = st.to(torch.zeros(1, dtype=torch.float64))
        self.assertEqual(like.dtype, torch.float64)
        copied = st.to(torch.device("cpu"), torch.float32, copy=True) if False else \
            st.to(device="cpu", copy=True)
        self.assertIsNot(copied, st)
        self.assertIsNot(copied.local_tensor(), st.local_tensor())
        self.assertEqual(copied.local_tensor(), st.local_tensor())
        gloo_pg = dist.new_group(backend="gloo")
        moved = st.to(torch.float64, process_group=gloo_pg)
        self.assertIs(moved._process_group, gloo_pg)
        # test_sharded_tensor_device: cpu, and still cpu after .to(cpu)
        self.assertEqual(st.device, torch.device("cpu"))
        self.assertEqual(st.to(torch.float64).device, torch.device("cpu"))
        with self.assertRaises(RuntimeError):
            st.to(1, 2, 3)
        # CUDA paths raise clearly without a GPU
        if not torch.cuda.is_available():
            with self.assertRaises(Exception):
                st.cuda()
            with self.assertRaises(Exception):
                st.to("cuda")

        # clone / detach / copy_ / requires_grad_ / type_as / deepcopy
        c = st.clone()
        self.assertIsNot(c.local_tensor(), st.local_tensor())
        self.assertEqual(c.local_tensor(), st.local_tensor())
        self.assertEqual(c.metadata(), st.metadata())
        self.assertEqual(c.sharding_spec(), st.sharding_spec())
        with self.assertRaisesRegex(RuntimeError, "Only support torch.preserve_format"):
            st.clone(memory_format=torch.contiguous_format)
        rg = sharded_tensor.rand(spec, 8, 4, requires_grad=True)
        self.assertTrue(rg.requires_grad)
        d = rg.detach()
        self.assertFalse(d.requires_grad)
        self.assertFalse(d.local_tensor().requires_grad)
        self.assertTrue(rg.requires_grad)
        z = sharded_tensor.zeros(spec, 8, 4)
        self.assertIs(z.copy_(st), z)
        self.assertEqual(z.local_tensor(), st.local_tensor())
        other = sharded_tensor.zeros(row_spec(dim=1), 8, 4)
        with self.assertRaisesRegex(RuntimeError, "inplace copy can only happen between two "
                                                  "ShardedTensor with same metadata!"):
            other.copy_(st)
        self.assertIs(z.requires_grad_(), z)
        self.assertTrue(z.requires_grad)
        self.assertTrue(z.local_tensor().requires_grad)
        z.requires_grad_(False)
        self.assertFalse(z.local_tensor().requires_grad)
        self.assertIs(st.type_as(st), st)
        self.assertEqual(st.type_as(torch.zeros(1, dtype=torch.float64)).dtype, torch.float64)
        dc = copy.deepcopy(st)
        self.assertIsNot(dc, st)
        self.assertIs(dc._process_group, st._process_group)
        self.assertEqual(dc.local_tensor(), st.local_tensor())
        self.assertIsNot(dc.local_tensor(), st.local_tensor())

        # equal / allclose through the module functions and the methods
        self.assertTrue(torch.equal(st, c))
        self.assertTrue(st.equal(c))
        self.assertTrue(torch.allclose(st, c))
        if self.rank == 2:
            c.local_tensor().fill_(5.0)
        self.assertFalse(torch.equal(st, c))  # every rank agrees
        self.assertFalse(st.allclose(c))
        self.assertFalse(torch.equal(st, sharded_tensor.rand(row_spec(dim=1), 8, 4)))
        other_pg = dist.new_group(ranks=[0, 1, 2, 3])
        # different group objects: False locally (the registry's validation makes the module
        # function raise instead, as torch's does)
        self.assertFalse(st.equal(st.to(torch.float32, copy=True, process_group=other_pg)))
        with self.assertRaisesRegex(TypeError, "need to be of type ShardedTensor"):
            torch.equal(st, torch.zeros(8, 4))

    @gloo
    def test_pickle_and_load_with_process_group(self):
        spec = row_spec()
        st = sharded_tensor.rand(spec, 8, 4)
        st2 = pickle.loads(pickle.dumps(st))
        self.assertIsInstance(st2, ShardedTensor)
        self.assertEqual(st2.local_tensor(), st.local_tensor())
        self.assertEqual(st2.metadata(), st.metadata())
        self.assertTrue(torch.equal(st, st2))
        buf = io.BytesIO()
        pickle.dump(st, buf)
        # loading inside load_with_process_group on a group of another size
        sub = dist.new_group(ranks=[0, 2, 3])
        if self.rank in (0, 2, 3):
            buf.seek(0)
            with load_with_process_group(sub):
                msg = "Local world size at save time was" if self.rank == 0 else \
                    "Local rank at save time was"
                with self.assertRaisesRegex(RuntimeError, msg):
                    pickle.load(buf)
                with self.assertRaisesRegex(RuntimeError, "already set"):
                    with load_with_process_group(sub):
                        pass
        # same layout, other group object: loads and uses that group
        same = dist.new_group(ranks=[0, 1, 2, 3])
        buf.seek(0)
        with load_with_process_group(same):
            st3 = pickle.load(buf)
        self.assertIs(st3._process_group, same)
        dist.barrier()
        data = pickle.dumps(st)
        dist.destroy_process_group()
        with self.assertRaisesRegex(RuntimeError, "Need to initialize default process group"):
            pickle.loads(data)
        self.init_pg("gloo")  # destroy_comms needs a group


class TestShardedTensorFromLocalShards(ShardedTensorTestBase):
    def _grid_shard(self, dtype=torch.float32, requires_grad=False):
        t = torch.ones(5, 5, dtype=dtype)
        if requires_grad:
            t.requires_grad = True
        return Shard.from_tensor_and_offsets(t, [self.rank // 2 * 5, self.rank % 2 * 5],
                                             self.rank)

    @gloo
    def test_pinned_local_shards(self):
        # pinned shards build a pinned ShardedTensor; a mix is reported as a pin_memory
        # mismatch (within a rank, then across ranks), never as an overlap
        offsets = [self.rank // 2 * 5, self.rank % 2 * 5]
        md = ShardMetadata(offsets, [5, 5], f"rank:{self.rank}/cpu")
        st = sharded_tensor.init_from_local_shards(
            [Shard(torch.randn(5, 5, pin_memory=True), md)], [10, 10])
        self.assertTrue(st.is_pinned())
        self.assertTrue(st.local_shards()[0].tensor.is_pinned())
        mixed = [Shard(torch.randn(5, 5, pin_memory=True), md), Shard(torch.randn(5, 5), md)]
        with self.assertRaisesRegex(ValueError, "pin_memory property need to be the same"):
            sharded_tensor.init_from_local_shards(mixed, [10, 10])
        one = [Shard(torch.randn(5, 5, pin_memory=self.rank == 0), md)]
        with self.assertRaisesRegex(ValueError, "pin_memory property does not match from "
                                                "different ranks"):
            sharded_tensor.init_from_local_shards(one, [10, 10])
        # the factories pin their local shards
        spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(4)])
        st = sharded_tensor.zeros(spec, 8, 3, pin_memory=True)
        self.assertTrue(st.is_pinned() and st.local_tensor().is_pinned())

    @gloo
    def test_init_from_local_shards_valid(self):
        # test_local_shards
        t = torch.rand(5, 5)
        shard = Shard(t, ShardMetadata([0, 0], [5, 5], f"rank:{self.rank}/cpu"))
        self.assertEqual(shard, Shard.from_tensor_and_offsets(t, [0, 0], self.rank))
        with self.assertRaisesRegex(ValueError, "Shard tensor size does not match"):
            Shard(t, ShardMetadata([0, 0], [4, 5], f"rank:{self.rank}/cpu"))
        # test_init_from_local_shards: 2x2 grid of 5x5
        local = [self._grid_shard()]
        st = sharded_tensor.init_from_local_shards(local, [10, 10])
        self.assertEqual(st.size(), torch.Size([10, 10]))
        self.assertEqual(len(st.local_shards()), 1)
        self.assertIs(st.local_shards()[0].metadata, local[0].metadata)
        self.assertEqual(st.local_tensor(), torch.ones(5, 5))
        mds = st.metadata().shards_metadata
        self.assertEqual(len(mds), 4)
        for r, smd in enumerate(mds):
            self.assertEqual(smd.shard_offsets, [r // 2 * 5, r % 2 * 5])
            self.assertEqual(str(smd.placement), f"rank:{r}/cpu")
        self.assertIsInstance(st.sharding_spec(), EnumerableShardingSpec)
        st = sharded_tensor.init_from_local_shards(local, 10, 10)
        self.assertEqual(st.size(), torch.Size([10, 10]))
        # row-wise shards infer a ChunkShardingSpec
        rows = [Shard.from_tensor_and_offsets(torch.ones(3, 4), [3 * self.rank, 0], self.rank)]
        st = sharded_tensor.init_from_local_shards(rows, 12, 4)
        self.assertEqual(st.sharding_spec(), row_spec())

        # test_recalc_for_metadata: (None, None) with sizes 0 and 5
        for s in (0, 5):
            shard = Shard.from_tensor_and_offsets(torch.ones(s, s), [0, 0], self.rank)
            st = sharded_tensor.init_from_local_shards([shard], None, None)
            self.assertEqual(st.size(), torch.Size([4 * s, s]))
            self.assertEqual(st.local_shards()[0].metadata.shard_offsets, [self.rank * s, 0])
            for r, smd in enumerate(st.metadata().shards_metadata):
                self.assertEqual(smd.shard_offsets, [r * s, 0])
        shard = Shard.from_tensor_and_offsets(torch.ones(5, 5), [0, 0], self.rank)
        with self.assertRaises(ValueError):
            sharded_tensor.init_from_local_shards([shard])
        # test_non_rw_sharded_recalc_for_metadata: (None, 5) turns a grid into rows
        local = [self._grid_shard()]
        st = sharded_tensor.init_from_local_shards(local, None, 5)
        self.assertEqual(st.size(), torch.Size([20, 5]))
        self.assertEqual(st.local_shards()[0].metadata.shard_offsets, [5 * self.rank, 0])
        # test_init_from_local_shards_with_different_glb_size: (0, 0) with real shards
        with self.assertRaises(ValueError):
            sharded_tensor.init_from_local_shards([self._grid_shard()], 0, 0)
        rows = [Shard.from_tensor_and_offsets(torch.ones(3, 4), [3 * self.rank, 0], self.rank)]
        with self.assertRaises(ValueError):
            sharded_tensor.init_from_local_shards(rows, 0, 0)

        # test_init_from_local_shards_and_global_metadata (happy path, no collective)
        props = TensorProperties(dtype=torch.float32)
        mds = [ShardMetadata([r // 2 * 5, r % 2 * 5], [5, 5], f"rank:{r}/cpu") for r in range(4)]
        gmd = ShardedTensorMetadata(mds, torch.Size([10, 10]), props)
        local = [Shard(torch.ones(5, 5), mds[self.rank])]
        st = ShardedTensor._init_from_local_shards_and_global_metadata(local, gmd)
        self.assertIs(st.metadata(), gmd)
        self.assertEqual(st.local_tensor(), torch.ones(5, 5))
        self.assertIsInstance(st.sharding_spec(), EnumerableShardingSpec)
        # test_init_from_local_shards_and_global_metadata_with_all_zeros
        zmds = [ShardMetadata([0, 0], [0, 0], f"rank:{r}/cpu") for r in range(4)]
        st = ShardedTensor._init_from_local_shards_and_global_metadata(
            [Shard(torch.zeros(0, 0), zmds[self.rank])],
            ShardedTensorMetadata(zmds, torch.Size([0, 0]), props))
        self.assertEqual(st.size(), torch.Size([0, 0]))
        # test_..._with_local_view: other ranks' metadata are zero-size
        for other_offset, ok in ((0, True), (5, True)):
            vmds = [ShardMetadata([0, 0], [5, 5], f"rank:{r}/cpu") if r == self.rank else
                    ShardMetadata([other_offset, 0], [0, 0], f"rank:{r}/cpu") for r in range(4)]
            st = ShardedTensor._init_from_local_shards_and_global_metadata(
                [Shard(torch.ones(5, 5), vmds[self.rank])],
                ShardedTensorMetadata(vmds, torch.Size([5, 5]), props))
            self.assertEqual(st.local_tensor(), torch.ones(5, 5))
        vmds = [ShardMetadata([1, 0], [5, 5], f"rank:{r}/cpu") if r == self.rank else
                ShardMetadata([0, 0], [0, 0], f"rank:{r}/cpu") for r in range(4)]
        with self.assertRaises(ValueError):
            ShardedTensor._init_from_local_shards_and_global_metadata(
                [Shard(torch.ones(5, 5), vmds[self.rank])],
                ShardedTensorMetadata(vmds, torch.Size([5, 5]), props))

    @gloo
    def test_init_from_local_shards_new_group(self):
        # pg {1,2,3}, global [15, 5]; rank 0 does not take part
        pg = dist.new_group(ranks=[1, 2, 3])
        if self.rank != 0:
            shard = Shard.from_tensor_and_offsets(torch.ones(5, 5), [5 * (self.rank - 1), 0],
                                                  self.rank)
            st = sharded_tensor.init_from_local_shards([shard], 15, 5, process_group=pg)
            self.assertEqual(st.size(), torch.Size([15, 5]))
            self.assertIs(st._process_group, pg)
            mds = st.metadata().shards_metadata
            self.assertEqual([str(m.placement) for m in mds], cpu_placements([1, 2, 3]))
            out = torch.zeros(15, 5) if self.rank == 1 else None
            st.gather(0, out)  # dst is a group rank: global rank 1
            if self.rank == 1:
                self.assertEqual(out, torch.ones(15, 5))

    @gloo
    def test_init_from_local_shards_invalid(self):
        props = TensorProperties(dtype=torch.float32)
        # empty local shards on every rank
        with self.assertRaisesRegex(ValueError, "have no local shards on all ranks"):
            sharded_tensor.init_from_local_shards([], 10, 10)
        # transposed (non-contiguous) local tensor
        t = torch.rand(5, 5).t()
        shard = Shard(t, ShardMetadata([self.rank // 2 * 5, self.rank % 2 * 5], [5, 5],
                                       f"rank:{self.rank}/cpu"))
        with self.assertRaisesRegex(ValueError, "Only torch.contiguous_format memory_format"):
            sharded_tensor.init_from_local_shards([shard], 10, 10)
        # Shard-level errors (size, device)
        with self.assertRaisesRegex(ValueError, "Shard tensor size does not match"):
            Shard(torch.ones(5, 5), ShardMetadata([0, 0], [5, 6], f"rank:{self.rank}/cpu"))
        with self.assertRaisesRegex(ValueError, "Local shard tensor device does not match"):
            Shard(torch.ones(5, 5), ShardMetadata([0, 0], [5, 5], f"rank:{self.rank}/cuda:0"))

        # test_init_from_local_shards_invalid_property_cross_ranks
        shard = self._grid_shard()
        with self.assertRaisesRegex(ValueError, "global_size property does not match from "
                                                "different ranks"):
            sharded_tensor.init_from_local_shards([shard], [10, 10] if self.rank else [10, 5])
        shard = self._grid_shard(dtype=torch.float64 if self.rank == 2 else torch.float32)
        with self.assertRaisesRegex(ValueError, "dtype property does not match from different "
                                                "ranks"):
            sharded_tensor.init_from_local_shards([shard], 10, 10)
        shard = self._grid_shard(requires_grad=self.rank == 1)
        with self.assertRaisesRegex(ValueError, "requires_grad property does not match"):
            sharded_tensor.init_from_local_shards([shard], 10, 10)
        # two local shards of different dtypes on one rank: a local error on that rank
        # test_init_from_local_shards_invalid_shards_overlap: rank 0 claims 6x6
        size = 6 if self.rank == 0 else 5
        shard = Shard.from_tensor_and_offsets(torch.ones(size, size),
                                              [self.rank // 2 * 5, self.rank % 2 * 5], self.rank)
        with self.assertRaisesRegex(ValueError, "overlap"):
            sharded_tensor.init_from_local_shards([shard], 10, 10)
        # ..._invalid_shards_gaps: rank 0 holds only 4x4
        size = 4 if self.rank == 0 else 5
        shard = Shard.from_tensor_and_offsets(torch.ones(size, size),
                                              [self.rank // 2 * 5, self.rank % 2 * 5], self.rank)
        with self.assertRaisesRegex(ValueError, "does not match tensor volume"):
            sharded_tensor.init_from_local_shards([shard], 10, 10)

        # test_init_from_local_shards_and_global_metadata_invalid_shards
        mds = [ShardMetadata([r // 2 * 5, r % 2 * 5], [5, 5], f"rank:{r}/cpu") for r in range(4)]
        gmd = ShardedTensorMetadata(mds, torch.Size([10, 10]), props)
        init = ShardedTensor._init_from_local_shards_and_global_metadata
        with self.assertRaisesRegex(RuntimeError, "does not match number of local shards "
                                                  "metadata"):
            init([], gmd)
        two = [Shard(torch.ones(5, 5), mds[self.rank]), Shard(torch.ones(5, 5), mds[self.rank])]
        with self.assertRaisesRegex(RuntimeError, "Number of local shards \\(2\\)"):
            init(two, gmd)
        mine = mds[self.rank]
        cases = [
            (torch.ones(5, 5, dtype=torch.float64), props, "dtype property is incompatible"),
            (torch.ones(5, 5).t(), props, "Only torch.contiguous_format"),
            (torch.ones(5, 5), TensorProperties(dtype=torch.float32, requires_grad=True),
             "requires_grad property is incompatible"),
            (torch.ones(5, 5), TensorProperties(dtype=torch.float32, pin_memory=True),
             "pin_memory property is incompatible"),
        ]
        for t, p, msg in cases:
            with self.assertRaisesRegex(ValueError, msg):
                init([Shard(t, mine)], ShardedTensorMetadata(mds, torch.Size([10, 10]), p))
        with self.assertRaisesRegex(ValueError, "Only torch.strided layout"):
            init([Shard(torch.ones(5, 5), mine)],
                 ShardedTensorMetadata(mds, torch.Size([10, 10]),
                                       TensorProperties(layout=torch.sparse_coo)))
        with self.assertRaisesRegex(ValueError, "shards_metadata must not be empty"):
            init([], ShardedTensorMetadata([], torch.Size([10, 10]), props))

    @gloo
    def test_bad_input_on_one_rank_raises_everywhere(self):
        # deviation §12.1: one rank's local error reaches every rank inside the exchange
        start = time.monotonic()
        offsets = [self.rank // 2 * 5, self.rank % 2 * 5]
        shard = Shard.from_tensor_and_offsets(torch.ones(5, 5), offsets, self.rank)
        if self.rank == 1:  # wrong rank in the placement, only here
            shard = Shard.from_tensor_and_offsets(torch.ones(5, 5), offsets, 3)
            msg = "Local shard metadata's rank does not match"
        else:
            msg = "failed on rank 1: ValueError: Local shard metadata's rank does not match"
        with self.assertRaisesRegex(ValueError, msg):
            sharded_tensor.init_from_local_shards([shard], 10, 10)
        # two local shards of different dtype on rank 3 only
        if self.rank == 3:
            bad = [Shard.from_tensor_and_offsets(torch.ones(5, 5), [5, 5], 3),
                   Shard.from_tensor_and_offsets(torch.ones(5, 5, dtype=torch.float64), [5, 0],
                                                 3)]
            msg = "Local shards' tensor dtype property need to be the same on rank:3"
        else:
            bad = [] if self.rank == 2 else [Shard.from_tensor_and_offsets(
                torch.ones(5, 5), offsets, self.rank)]
            msg = "failed on rank 3"
        with self.assertRaisesRegex(ValueError, msg):
            sharded_tensor.init_from_local_shards(bad, 10, 10)
        # non-int global size on rank 0 only
        gs = (10, "x") if self.rank == 0 else (10, 10)
        shard = Shard.from_tensor_and_offsets(torch.ones(5, 5), offsets, self.rank)
        with self.assertRaisesRegex(TypeError, "size has to be a sequence of ints" if
                                    self.rank == 0 else "failed on rank 0"):
            sharded_tensor.init_from_local_shards([shard], *gs)
        # still usable afterwards (nobody left a collective half done)
        st = sharded_tensor.init_from_local_shards([shard], 10, 10)
        self.assertEqual(st.size(), torch.Size([10, 10]))
        self.assertLess(time.monotonic() - start, 30)

    @gloo
    def test_init_from_local_tensor(self):
        # spec §4.3 (deprecated entry point), chunk specs over several sizes
        for sizes in ([20, 10], [21, 11], [23, 16], [44, 16, 8]):
            spec = ChunkShardingSpec(0, cpu_placements([2, 0, 3, 1]))
            md = spec.build_metadata(torch.Size(sizes), TensorProperties())
            mine = [m for m in md.shards_metadata if m.placement.rank() == self.rank][0]
            local = torch.rand(*mine.shard_sizes)
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                st = ShardedTensor._init_from_local_tensor(local, spec, torch.Size(sizes))
            self.assertTrue(any(issubclass(x.category, FutureWarning) for x in w))
            self.assertEqual(st.size(), torch.Size(sizes))
            self.assertIs(st.local_tensor(), local)
            self.assertEqual(st.sharding_spec(), spec)
        # test_init_from_local_tensor_errors
        spec = EnumerableShardingSpec([ShardMetadata([0, 0], [5, 5], f"rank:{r}/cpu")
                                       for r in range(1)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with self.assertRaisesRegex(ValueError, "do not cover the entire tensor"):
                ShardedTensor._init_from_local_tensor(torch.rand(5, 5), spec, 10, 10)
            with self.assertRaisesRegex(ValueError, "local_tensor is not a contiguous Tensor."):
                ShardedTensor._init_from_local_tensor(torch.rand(5, 6).t(), row_spec(), 20, 5)


class TestShardTensor(ShardedTensorTestBase):
    @gloo
    def test_shard_tensor(self):
        # test_shard_tensor: 12x12 row-wise
        spec = row_spec()
        full = arange((12, 12))
        st = _shard_tensor(full, spec)
        self.assertEqual(st.local_tensor(), full.narrow(0, 3 * self.rank, 3))
        self.assertEqual(st.sharding_spec(), spec)
        # scattered from another source (only src's data matters)
        mine = full if self.rank == 2 else torch.zeros(12, 12)
        st = spec.shard(mine, src_rank=2)
        self.assertEqual(st.local_tensor(), full.narrow(0, 3 * self.rank, 3))
        # test_shard_tensor_with_empty_shard: 9x12 over 4
        full = arange((9, 12))
        st = _shard_tensor(full, spec)
        mds = st.metadata().shards_metadata
        self.assertEqual(len(mds), 4)
        for md in mds:
            self.assertLessEqual(md.shard_offsets[0] + md.shard_sizes[0], 9)
        if self.rank < 3:
            self.assertEqual(st.local_tensor().size(), torch.Size([3, 12]))
            self.assertEqual(st.local_tensor(), full.narrow(0, 3 * self.rank, 3))
        else:
            self.assertEqual(st.local_tensor().size(), torch.Size([0, 12]))
        # uneven column sharding 10x21 and requires_grad copied
        full = arange((10, 21))
        full.requires_grad = True
        st = _shard_tensor(full, row_spec(dim=1))
        width = 6 if self.rank < 3 else 3
        self.assertEqual(st.local_tensor().size(), torch.Size([10, width]))
        self.assertTrue(np.array_equal(np_of(st.local_tensor()),
                                       np.arange(210).reshape(10, 21)[:, 6 * self.rank:
                                                                      6 * self.rank + width]))
        self.assertTrue(st.local_tensor().requires_grad)
        self.assertTrue(st.requires_grad)

    @gloo
    def test_shard_tensor_errors(self):
        spec = row_spec()
        full = arange((12, 12))
        # src_rank differs per rank: every rank raises
        with self.assertRaisesRegex(ValueError, "src_rank=.* does not match with src_rank="):
            _shard_tensor(full, spec, src_rank=self.rank)
        # a spec that differs per rank
        other = row_spec(ranks=[3, 2, 1, 0]) if self.rank == 1 else spec
        with self.assertRaisesRegex(ValueError, "sharding_spec=.* does not match with "
                                                "sharding_spec="):
            _shard_tensor(full, other)
        with self.assertRaisesRegex(ValueError, "input tensor is not a contiguous Tensor"):
            _shard_tensor(full.t(), spec)
        enum = EnumerableShardingSpec([ShardMetadata([3 * r, 0], [3, 12], f"rank:{r}/cpu")
                                       for r in range(4)])
        with self.assertRaisesRegex(NotImplementedError, "not implemented yet!"):
            _shard_tensor(full, enum)


class TestShardedTensorCustomOps(ShardedTensorTestBase):
    @gloo
    def test_custom_ops_and_init_ops(self):
        spec = row_spec()
        st = sharded_tensor.rand(spec, 10, 10)
        calls = []

        # test_custom_op: a user implementation of a function (asin in torch; sqrt here,
        # shardopt has no asin yet)
        @custom_sharded_op_impl(torch.sqrt)
        def my_sqrt(types, args, kwargs, process_group):
            calls.append(process_group)
            return args[0].local_shards()[0].tensor.sqrt()

        res = torch.sqrt(st)
        self.assertEqual(calls, [st._process_group])
        self.assertTrue(np.allclose(np_of(res), np.sqrt(np_of(st.local_tensor()))))
        # basic validation of the wrapper
        with self.assertRaisesRegex(ValueError, "No input for"):
            my_sqrt((), (), {}, None)
        with self.assertRaisesRegex(TypeError, "without any distributed tensor"):
            my_sqrt((), (torch.ones(2),), {}, None)
        other_pg = dist.new_group(ranks=[0, 1, 2, 3])
        st_other = sharded_tensor.rand(spec, 10, 10, process_group=other_pg)
        with self.assertRaisesRegex(RuntimeError, "same ProcessGroup"):
            my_sqrt((), (st, st_other), {}, None)

        # test_custom_op_override: a spec-class implementation beats the built-in, a user one
        # beats both
        @custom_sharding_spec_op(ChunkShardingSpec, torch.exp)
        def spec_exp(types, args, kwargs, process_group):
            return "spec"
        self.assertEqual(torch.exp(st), "spec")
        grid = sharded_tensor.ones(grid_spec_10x10(), 10, 10)
        with self.assertRaisesRegex(RuntimeError, "not supported for ShardedTensor"):
            torch.exp(grid)

        @custom_sharded_op_impl(torch.exp)
        def user_exp(types, args, kwargs, process_group):
            return "user"
        self.assertEqual(torch.exp(st), "user")
        self.assertEqual(torch.exp(grid), "user")

        # nn.init ops apply to every local shard
        init = getattr(getattr(torch, "nn", None), "init", None)
        if init is None:
            return
        st = sharded_tensor.empty(spec, 8, 6)
        torch.manual_seed(5)
        init.uniform_(st, a=-2.0, b=3.0)
        v = np_of(st.local_tensor())
        self.assertTrue(((v >= -2) & (v < 3)).all())
        torch.manual_seed(5)
        ref = torch.empty(2, 6)
        init.uniform_(ref, a=-2.0, b=3.0)
        self.assertEqual(st.local_tensor(), ref)
        init.normal_(st, mean=0.0, std=1.0)
        init.constant_(st, 2.5)
        self.assertTrue((np_of(st.local_tensor()) == 2.5).all())
        torch.manual_seed(9)
        init.kaiming_uniform_(st, a=0, mode="fan_in", nonlinearity="relu")
        torch.manual_seed(9)
        ref = torch.empty(2, 6)
        init.kaiming_uniform_(ref, a=0, mode="fan_in", nonlinearity="relu")
        self.assertEqual(st.local_tensor(), ref)  # fans from the local 2x6 shard
        with self.assertRaisesRegex(ValueError, "param: b shouldn't be None!"):
            init.uniform_(st, a=0.0, b=None)


class TestModuleIntegration(ShardedTensorTestBase):
    @gloo
    def test_state_dict_hooks_and_parameter(self):
        nn = getattr(torch, "nn", None)
        if nn is None or not hasattr(nn, "Module"):
            self.skipTest("shardopt.nn is not available in this build")
        spec = row_spec()

        class Inner(nn.Module):
            def __init__(self, spec):
                super().__init__()
                self.sharded_tensor2 = sharded_tensor.rand(spec, 10, 20) if spec else None

        class Outer(nn.Module):
            def __init__(self, spec):
                super().__init__()
                self.sharded_tensor1 = sharded_tensor.rand(spec, 10, 20) if spec else None
                self.random_tensor1 = nn.Parameter(torch.rand(2, 2))
                self.submodule = Inner(spec)

        m = Outer(spec)
        m._register_state_dict_hook(state_dict_hook)
        sd = m.state_dict()
        self.assertIn("sharded_tensor1", sd)
        self.assertIn("submodule.sharded_tensor2", sd)
        data = pickle.dumps(sd)
        loaded = pickle.loads(data)
        fresh = Outer(None)
        fresh._register_load_state_dict_pre_hook(pre_load_state_dict_hook, True)
        fresh.load_state_dict(loaded, strict=False)
        self.assertTrue(torch.equal(m.sharded_tensor1, fresh.sharded_tensor1))
        self.assertTrue(torch.equal(m.submodule.sharded_tensor2, fresh.submodule.sharded_tensor2))
        # no sharded tensors: the hooks change nothing
        lin = nn.Linear(4, 4)
        plain = lin.state_dict()
        lin._register_state_dict_hook(state_dict_hook)
        self.assertEqual(list(lin.state_dict().keys()), list(plain.keys()))
        # nn.Parameter(st) returns st marked as a parameter, listed by named_parameters
        st = sharded_tensor.rand(spec, 8, 4)
        p = nn.Parameter(st)
        self.assertIs(p, st)
        self.assertTrue(st._is_param)
        self.assertTrue(st.local_tensor().requires_grad)
        self.assertTrue(st.requires_grad)
        holder = nn.Module()
        holder.weight = p
        self.assertEqual([n for n, _ in holder.named_parameters()], ["weight"])


    @gloo
    def test_load_state_dict_round_trip_with_sharded_parameter(self):
        # Regression (issue 9 item 4 / issue 10 item 6): copy_ follows torch's rule -- the
        # LOCAL shards' metadata must match, not the whole metadata -- so loading a state
        # dict whose ShardedTensor differs only in tensor properties (requires_grad: the
        # state dict holds detached values) works.
        nn = torch.nn
        spec = row_spec()
        torch.manual_seed(11)
        src = nn.Linear(6, 8)
        dst = nn.Linear(6, 8)
        torch.shard_parameter(src, "weight", spec)
        torch.shard_parameter(dst, "weight", spec)
        self.assertTrue(src.weight.requires_grad)
        before = np_of(src.weight.local_tensor()).copy()
        src.load_state_dict(src.state_dict())  # raised "inplace copy ..." before the fix
        self.assertTrue(np.array_equal(np_of(src.weight.local_tensor()), before))
        self.assertTrue(src.weight.requires_grad)  # the parameter keeps its properties
        # a different module with the same sharding takes src's values
        dst.load_state_dict(src.state_dict())
        self.assertTrue(np.array_equal(np_of(dst.weight.local_tensor()), before))
        self.assertTrue(np.array_equal(np_of(dst.bias.detach()), np_of(src.bias.detach())))
        self.assertTrue(dst.weight.local_tensor().requires_grad)
        # copy_ across requires_grad, directly
        plain = sharded_tensor.zeros(spec, 8, 6)
        self.assertIs(plain.copy_(src.weight), plain)
        self.assertFalse(plain.requires_grad)
        self.assertTrue(np.array_equal(np_of(plain.local_tensor()), before))
        # a different sharding is still refused, on every rank
        cols = sharded_tensor.zeros(row_spec(dim=1), 8, 6)
        with self.assertRaisesRegex(RuntimeError, "inplace copy can only happen between two "
                                                  "ShardedTensor with same metadata!"):
            cols.copy_(src.weight)


class TestShardedTensorNCCL(ShardedTensorTestBase):
    @with_comms(init_rpc=False, backend="nccl")
    @skip_if_lt_x_gpu(4)
    @requires_nccl()
    def test_cuda_ones_gather_and_moves(self):
        spec = ChunkShardingSpec(0, [f"rank:{r}/cuda:{r}" for r in range(4)])
        st = sharded_tensor.ones(spec, 10, 20)
        self.assertEqual(st.device, torch.device("cuda", self.rank))
        out = torch.zeros(10, 20, device=f"cuda:{self.rank}") if self.rank == 0 else None
        st.gather(0, out)
        if self.rank == 0:
            self.assertEqual(out, torch.ones(10, 20, device="cuda:0"))
        cpu_pg = dist.new_group(backend="gloo")
        on_cpu = st.cpu(process_group=cpu_pg)
        self.assertEqual(on_cpu.device, torch.device("cpu"))
        back = on_cpu.cuda()
        self.assertEqual(back.device, torch.device("cuda", self.rank))
