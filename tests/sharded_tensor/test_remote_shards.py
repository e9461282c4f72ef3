"""ShardedTensor with RPC: ``init_rrefs=True`` / ``remote_shards()`` and worker-name
placements ("worker<r>/cpu"), on 4 Gloo ranks with RPC started by the harness.

Every rank fills its shards with values that depend on the global position, so the content
fetched through each remote shard's ``to_here()`` can be checked against the full tensor.
"""
import pickle

import numpy as np

import shardopt as torch
import shardopt.distributed as dist
from shardopt import sharded_tensor
from shardopt.distributed import rpc
from shardopt.sharded_tensor import Shard
from shardopt.sharded_tensor._shard_chunk import _shard_tensor
from shardopt.sharding_spec import ChunkShardingSpec, EnumerableShardingSpec, ShardMetadata
from shardopt.testing import ShardedTensorTestBase, with_comms

WORLD = 4
with_rpc = with_comms(init_rpc=True, backend="gloo")


def _full(rows, cols):
    return np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)


def _fill_from_full(st, full):
    """Write each local shard's slice of `full` into it."""
    for shard in st.local_shards():
        o, s = shard.metadata.shard_offsets, shard.metadata.shard_sizes
        piece = full[o[0]:o[0] + s[0], o[1]:o[1] + s[1]]
        shard.tensor.copy_(torch.from_numpy(np.ascontiguousarray(piece)))


class TestRemoteShards(ShardedTensorTestBase):
    TIMEOUT = 90

    def _check_remote(self, st, full, expect_ranks):
        remote = st.remote_shards()
        self.assertEqual(sorted(remote), sorted(expect_ranks))
        md = st.metadata().shards_metadata
        for rank, rrefs in remote.items():
            self.assertNotEqual(rank, self.rank)
            for rref in rrefs:
                self.assertIsInstance(rref, rpc.RRef)
                self.assertFalse(rref.is_owner())
                self.assertEqual(rref.owner().id, rank)
                self.assertEqual(rref.owner_name(), f"worker{rank}")
                shard = rref.to_here()
                self.assertIsInstance(shard, Shard)
                self.assertIn(shard.metadata, md)
                o, s = shard.metadata.shard_offsets, shard.metadata.shard_sizes
                np.testing.assert_array_equal(shard.tensor.numpy(),
                                              full[o[0]:o[0] + s[0], o[1]:o[1] + s[1]])

    @with_rpc
    def test_init_rrefs_chunked_and_enumerable(self):
        spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(WORLD)])
        st = sharded_tensor.zeros(spec, 10, 6, init_rrefs=True)
        full = _full(10, 6)
        _fill_from_full(st, full)
        dist.barrier()  # every rank has filled its shards before anyone fetches
        self._check_remote(st, full, [r for r in range(WORLD) if r != self.rank])

        # an enumerable spec with two shards on rank 0 and none on rank 3
        grid = EnumerableShardingSpec([
            ShardMetadata([0, 0], [4, 6], "rank:0/cpu"),
            ShardMetadata([4, 0], [2, 6], "rank:0/cpu"),
            ShardMetadata([6, 0], [2, 6], "rank:1/cpu"),
            ShardMetadata([8, 0], [2, 6], "rank:2/cpu"),
        ])
        st2 = sharded_tensor.empty(grid, 10, 6, init_rrefs=True)
        _fill_from_full(st2, full)
        dist.barrier()
        self._check_remote(st2, full, [r for r in range(3) if r != self.rank])
        if self.rank != 0:
            self.assertEqual(len(st2.remote_shards()[0]), 2)

        # copies share the remote references (RRefs are handles)
        import copy  # noqa: PLC0415
        dup = copy.deepcopy(st)
        self.assertIs(dup.remote_shards()[(self.rank + 1) % WORLD][0],
                      st.remote_shards()[(self.rank + 1) % WORLD][0])
        del dup
        # the other factories and init_from_local_shards pass init_rrefs through
        for make in (sharded_tensor.ones, sharded_tensor.rand):
            self.assertEqual(len(make(spec, 8, 2, init_rrefs=True).remote_shards()), WORLD - 1)
        self.assertEqual(len(sharded_tensor.full(spec, (8, 2), 3.0, init_rrefs=True)
                             .remote_shards()), WORLD - 1)
        local = [Shard(torch.full((2, 3), float(self.rank)),
                       ShardMetadata([2 * self.rank, 0], [2, 3], f"rank:{self.rank}/cpu"))]
        st3 = sharded_tensor.init_from_local_shards(local, 8, 3, init_rrefs=True)
        for rank, (rref,) in st3.remote_shards().items():
            np.testing.assert_array_equal(rref.to_here().tensor.numpy(), np.full((2, 3), rank))
        # the id map behind the registration holds no tensor alive
        from shardopt.sharded_tensor import api  # noqa: PLC0415
        del st, st2, st3
        self.assertEqual(len(api._sharded_tensor_map), 0)  # no cycle keeps one alive
        # without init_rrefs there are no remote shards
        with self.assertRaisesRegex(RuntimeError, "init_rrefs=False, no RRefs"):
            sharded_tensor.zeros(spec, 4, 4).remote_shards()

    @with_rpc
    def test_worker_name_placements(self):
        spec = ChunkShardingSpec(dim=1, placements=[f"worker{r}/cpu" for r in range(WORLD)])
        st = sharded_tensor.empty(spec, 5, 8, init_rrefs=True)
        self.assertEqual(len(st.local_shards()), 1)
        smd = st.local_shards()[0].metadata
        self.assertEqual(smd.placement.worker_name(), f"worker{self.rank}")
        self.assertEqual(smd.shard_offsets, [0, 2 * self.rank])
        full = _full(5, 8)
        _fill_from_full(st, full)
        dist.barrier()
        self._check_remote(st, full, [r for r in range(WORLD) if r != self.rank])
        # gather over worker-name placements
        out = torch.zeros(5, 8) if self.rank == 0 else None
        st.gather(0, out)
        if self.rank == 0:
            np.testing.assert_array_equal(out.numpy(), full)
        # the placements are resolved in the RPC order; an unknown name is an error
        with self.assertRaisesRegex(ValueError, "Invalid worker name: worker9"):
            sharded_tensor.empty(ChunkShardingSpec(0, ["worker0/cpu", "worker9/cpu"]), 4, 4)
        # shard a full tensor onto worker-name placements
        src = torch.from_numpy(full.copy())
        st2 = _shard_tensor(src, spec)
        np.testing.assert_array_equal(st2.local_shards()[0].tensor.numpy(),
                                      full[:, 2 * self.rank:2 * self.rank + 2])

    @with_rpc
    def test_pickle_keeps_init_rrefs(self):
        spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(WORLD)])
        st = sharded_tensor.ones(spec, 8, 2, init_rrefs=True)
        data = pickle.dumps(st)
        st2 = pickle.loads(data)  # an RPC collective again, like torch's _post_init
        self.assertTrue(st2._init_rrefs)
        self.assertEqual(sorted(st2.remote_shards()),
                         [r for r in range(WORLD) if r != self.rank])
        for rank, (rref,) in st2.remote_shards().items():
            np.testing.assert_array_equal(rref.to_here().tensor.numpy(), np.ones((2, 2)))

    def test_pg_and_rpc_ranks_must_match(self):
        self.init_pg("gloo")
        opts = rpc.TensorPipeRpcBackendOptions(init_method=f"file://{self.file_name}")
        shifted = (self.rank + 1) % WORLD
        rpc.init_rpc(f"worker{shifted}", rank=shifted, world_size=WORLD,
                     rpc_backend_options=opts)
        with self.assertRaisesRegex(ValueError, "Default ProcessGroup and RPC ranks must be "
                                                "the same for ShardedTensor, found process "
                                                f"group rank: {self.rank} and RPC rank: "
                                                f"{shifted}"):
            sharded_tensor.empty(ChunkShardingSpec(0, ["rank:1/cpu"]), 10, 20, init_rrefs=True)
        rpc.shutdown()
        dist.destroy_process_group()

    @with_comms(init_rpc=False, backend="gloo")
    def test_without_rpc(self):
        with self.assertRaisesRegex(RuntimeError, "RPC Framework needs to be initialized using "
                                                  "torch.distributed.rpc.init_rpc if init_rrefs"):
            sharded_tensor.zeros(ChunkShardingSpec(0, ["rank:0/cpu"]), 4, init_rrefs=True)
        with self.assertRaisesRegex(RuntimeError, "RPC framework needs to be initialized for "
                                                  "using worker names: worker0"):
            sharded_tensor.zeros(ChunkShardingSpec(0, ["worker0/cpu"]), 4)
