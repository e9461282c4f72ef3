"""shardopt.save / load of ShardedTensors on 4 Gloo ranks: local shards, metadata and spec
come back (weights_only=True), a module's sharded state_dict round-trips, and loading checks
the process group as ShardedTensor pickling does (load_with_process_group)."""
import io
import os
import tempfile

import numpy as np

import shardopt as so
import shardopt.distributed as dist
from shardopt import nn, sharded_tensor
from shardopt.sharded_tensor import ShardedTensor, load_with_process_group
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, with_comms

PLACEMENTS = [f"rank:{r}/cpu" for r in range(4)]


def _shared_dir(rank):
    # one directory per test run: the ranks share a parent, the pytest process
    path = os.path.join(tempfile.gettempdir(), f"so_ser_{os.getppid()}")
    os.makedirs(path, exist_ok=True)
    return path


class TestSaveLoadSharded(ShardedTensorTestBase):
    @with_comms(init_rpc=False)
    def test_sharded_tensor_round_trip(self):
        spec = ChunkShardingSpec(dim=0, placements=PLACEMENTS)
        so.manual_seed(self.rank)
        st = sharded_tensor.rand(spec, 10, 3)  # 3, 3, 3, 1 rows
        buf = io.BytesIO()
        so.save({"st": st, "step": 5}, buf)
        buf.seek(0)
        r = so.load(buf)
        self.assertIsInstance(r["st"], ShardedTensor)
        got = r["st"]
        self.assertEqual(len(got.local_shards()), len(st.local_shards()))
        for a, b in zip(st.local_shards(), got.local_shards()):
            np.testing.assert_array_equal(a.tensor.numpy(), b.tensor.numpy())
            self.assertEqual(a.metadata, b.metadata)
        self.assertEqual(st.metadata(), got.metadata())
        self.assertEqual(st.sharding_spec(), got.sharding_spec())
        self.assertIs(r["st"]._process_group, st._process_group)
        self.assertEqual(r["step"], 5)
        # loading in a group of another size fails the way unpickling does
        sub = dist.new_group([0, 1])
        if self.rank in (0, 1):
            buf.seek(0)
            with self.assertRaisesRegex(RuntimeError, "Local world size at save time was 4, "
                                                      "but at load time was 2"):
                with load_with_process_group(sub):
                    so.load(buf)

    @with_comms(init_rpc=False)
    def test_sharded_module_state_dict_through_files(self):
        spec = ChunkShardingSpec(dim=0, placements=PLACEMENTS)
        so.manual_seed(0)
        m = nn.Linear(6, 9)
        so.shard_parameter(m, "weight", spec)
        path = os.path.join(_shared_dir(self.rank), f"rank{self.rank}.pt")
        so.save(m.state_dict(), path)
        sd = so.load(path)
        w = sd["weight"]
        self.assertIsInstance(w, ShardedTensor)
        for a, b in zip(m.weight.local_shards(), w.local_shards()):
            np.testing.assert_array_equal(a.tensor.detach().numpy(), b.tensor.numpy())
            self.assertEqual(a.metadata, b.metadata)
        np.testing.assert_array_equal(sd["bias"].numpy(), m.bias.detach().numpy())
        dist.barrier()
        if self.rank == 0:
            for r in range(4):
                os.unlink(os.path.join(_shared_dir(0), f"rank{r}.pt"))
