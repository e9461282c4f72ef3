"""A user implementation registered with ``custom_sharded_op_impl`` for a function of
shardopt.nn.functional / shardopt.nn.init is what that function does on a ShardedTensor,
including when an nn.Module calls it (4 Gloo ranks)."""
import shardopt as torch
import shardopt.nn as nn
import shardopt.nn.functional as F
import shardopt.nn.init as init
from shardopt import sharded_tensor
from shardopt.sharded_tensor import custom_sharded_op_impl
from shardopt.sharded_tensor._shard_api import shard_parameter
from shardopt.sharded_tensor._shard_registry import _CUSTOM_SHARDED_OPS, canonical
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, with_comms

RANKS = [f"rank:{r}/cpu" for r in range(4)]


class TestCustomOpDispatch(ShardedTensorTestBase):
    @with_comms(init_rpc=False, backend="gloo")
    def test_custom_linear_and_init_override_builtins(self):
        seen = []

        @custom_sharded_op_impl(F.linear)
        def my_linear(types, args, kwargs, process_group):
            inp, weight = args[0], args[1]
            seen.append(("linear", type(weight).__name__, process_group is weight._process_group))
            # this rank's output features of input @ weight.T (the row-sharded weight)
            return inp @ weight.local_tensor().t()

        @custom_sharded_op_impl(init.uniform_)
        def my_uniform(types, args, kwargs, process_group):
            seen.append(("uniform_", kwargs["a"], kwargs["b"]))
            for shard in kwargs["tensor"].local_shards():
                shard.tensor.detach().fill_(float(kwargs["b"]))
            return kwargs["tensor"]

        try:
            torch.manual_seed(0)
            fc = nn.Linear(5, 8, bias=False)
            full = fc.weight.detach().clone()
            shard_parameter(fc, "weight", ChunkShardingSpec(dim=0, placements=RANKS))
            x = torch.ones(3, 5)
            out = fc(x)  # nn.Linear.forward -> F.linear -> the custom op
            self.assertEqual(seen[-1], ("linear", "ShardedTensor", True))
            self.assertEqual(out, x @ full.narrow(0, 2 * self.rank, 2).t())
            out2 = F.linear(x, fc.weight)
            self.assertEqual(out2, out)

            st = sharded_tensor.zeros(ChunkShardingSpec(dim=0, placements=RANKS), 8, 2)
            init.uniform_(st, a=0.0, b=3.0)
            self.assertEqual(seen[-1], ("uniform_", 0.0, 3.0))
            self.assertEqual(st.local_tensor(), torch.full((2, 2), 3.0))
        finally:
            _CUSTOM_SHARDED_OPS.pop(canonical(F.linear), None)
            _CUSTOM_SHARDED_OPS.pop(canonical(init.uniform_), None)

        # without the user's op: the built-in uniform_ again, and an op with no sharded
        # implementation at all fails with torch's message
        st = sharded_tensor.zeros(ChunkShardingSpec(dim=0, placements=RANKS), 8, 2)
        init.uniform_(st, a=5.0, b=6.0)
        lt = st.local_tensor().numpy()
        self.assertTrue(((lt >= 5.0) & (lt <= 6.0)).all())
        with self.assertRaisesRegex(RuntimeError, "torch function 'mse_loss'.*not supported "
                                                  "for ShardedTensor"):
            F.mse_loss(st, st)
