"""RMSprop and Adagrad inside ShardedOptimizer on 4 Gloo ranks: row- and column-sharded
parameters (uneven and empty shards) plus a replicated one end bit-identical to the same
optimizer on the unsharded model, and the state_dict carries torch's state names."""
import numpy as np

import shardopt as so
from shardopt import nn, optim
from shardopt.sharded_optim import ShardedOptimizer, named_params_with_sharded_tensor
from shardopt.sharded_tensor import ShardedTensor
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, with_comms

PLACEMENTS = [f"rank:{r}/cpu" for r in range(4)]
SHAPES = {"a": ((21, 10), 0), "b": ((2, 20), 0), "c": ((2, 20), 1)}


class _Params(nn.Module):
    def __init__(self):
        super().__init__()
        so.manual_seed(0)
        for name, (shape, _) in SHAPES.items():
            setattr(self, name, nn.Parameter(so.rand(*shape)))
        self.d = nn.Parameter(so.rand(3))


def _region(md):
    return tuple(slice(o, o + s) for o, s in zip(md.shard_offsets, md.shard_sizes))


def _set_grads(named, step):
    rs = np.random.RandomState(step)
    full = {n: rs.standard_normal(shape).astype(np.float32) for n, (shape, _) in SHAPES.items()}
    full["d"] = rs.standard_normal(3).astype(np.float32)
    for name, p in named.items():
        if isinstance(p, ShardedTensor):
            for shard in p.local_shards():
                shard.tensor.grad = so.from_numpy(
                    np.ascontiguousarray(full[name][_region(shard.metadata)]))
        else:
            p.grad = so.from_numpy(full[name])


class TestShardedAdaptive(ShardedTensorTestBase):
    def _check(self, cls, kw, state_names):
        m = _Params()
        for name, (_, dim) in SHAPES.items():
            so.shard_parameter(m, name, ChunkShardingSpec(dim=dim, placements=PLACEMENTS))
        named = dict(named_params_with_sharded_tensor(m))
        ref = _Params()
        ref_opt = cls(ref.parameters(), **kw)
        opt = ShardedOptimizer(named, cls, **kw)
        for step in range(4):
            _set_grads(named, step)
            _set_grads(dict(ref.named_parameters()), step)
            opt.step()
            ref_opt.step()
        want = {n: p.detach().numpy() for n, p in ref.named_parameters()}
        for name, p in named.items():
            if isinstance(p, ShardedTensor):
                for shard in p.local_shards():
                    np.testing.assert_array_equal(shard.tensor.detach().numpy(),
                                                  want[name][_region(shard.metadata)],
                                                  err_msg=name)
            else:
                np.testing.assert_array_equal(p.detach().numpy(), want[name])
        sd = opt.state_dict()
        self.assertEqual(set(sd["state"]["d"]), state_names)
        self.assertEqual(set(sd["state"]["a"][0]), state_names)

    @with_comms(init_rpc=False)
    def test_rmsprop_matches_unsharded(self):
        self._check(optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True,
                                        weight_decay=0.01),
                    {"step", "square_avg", "momentum_buffer", "grad_avg"})

    @with_comms(init_rpc=False)
    def test_adagrad_matches_unsharded(self):
        self._check(optim.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
                    {"step", "sum"})
