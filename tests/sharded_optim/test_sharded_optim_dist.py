"""ShardedOptimizer over ShardedTensors on 4 Gloo ranks: uneven and zero-size shards,
state_dict resume (bit-exact), loading into a differently sharded optimizer (fails on every
rank), add_param_group with ShardedTensors, shard_parameter's registration."""
import pickle

import numpy as np

import shardopt as so
from shardopt import nn, optim, sharded_tensor
from shardopt.sharded_optim import ShardedOptimizer, named_params_with_sharded_tensor
from shardopt.sharded_tensor import ShardedTensor
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, with_comms

PLACEMENTS = [f"rank:{r}/cpu" for r in range(4)]
# (shape, sharding dim): 21 rows -> 6, 6, 6, 3; 2 rows -> 1, 1, 0, 0 (two empty shards);
# 2 x 20 by columns -> 5 each
SHAPES = {"a": ((21, 10), 0), "b": ((2, 20), 0), "c": ((2, 20), 1)}


class _Params(nn.Module):
    def __init__(self, seed):
        super().__init__()
        so.manual_seed(seed)
        for name, (shape, _) in SHAPES.items():
            setattr(self, name, nn.Parameter(so.rand(*shape)))
        self.d = nn.Parameter(so.rand(3))  # stays replicated


def _full_grads(step):
    rs = np.random.RandomState(1000 + step)
    out = {n: rs.standard_normal(shape).astype(np.float32) for n, (shape, _) in SHAPES.items()}
    out["d"] = rs.standard_normal(3).astype(np.float32)
    return out


def _region(md):
    return tuple(slice(o, o + s) for o, s in zip(md.shard_offsets, md.shard_sizes))


def _set_grads(named, step):
    g = _full_grads(step)
    for name, p in named.items():
        if isinstance(p, ShardedTensor):
            for shard in p.local_shards():
                shard.tensor.grad = so.from_numpy(np.ascontiguousarray(g[name][_region(shard.metadata)]))
        else:
            p.grad = so.from_numpy(g[name])


def _sharded_model(seed, specs=None):
    m = _Params(seed)
    for name, (_, dim) in SHAPES.items():
        spec = (specs or {}).get(name) or ChunkShardingSpec(dim=dim, placements=PLACEMENTS)
        so.shard_parameter(m, name, spec)
    return m


def _local(named):
    out = {}
    for name, p in named.items():
        if isinstance(p, ShardedTensor):
            out[name] = [s.tensor.detach().numpy().copy() for s in p.local_shards()]
        else:
            out[name] = p.detach().numpy().copy()
    return out


class TestShardedOptimizerDist(ShardedTensorTestBase):
    @with_comms(init_rpc=False)
    def test_uneven_and_empty_shards_match_the_unsharded_optimizer(self):
        m = _sharded_model(0)
        named = dict(named_params_with_sharded_tensor(m))
        self.assertEqual(sorted(named), ["a", "b", "c", "d"])
        for name in ("a", "b", "c"):
            self.assertIsInstance(getattr(m, name), ShardedTensor)
            self.assertIsInstance(getattr(m, name), nn.Parameter)
        b_shard = m.b.local_shards()[0].tensor
        self.assertEqual(tuple(b_shard.shape), (1, 20) if self.rank < 2 else (0, 20))
        self.assertEqual(tuple(m.a.local_shards()[0].tensor.shape), (6, 10) if self.rank < 3 else (3, 10))

        ref = _Params(0)  # the same init, unsharded
        ref_opt = optim.Adam(ref.parameters(), lr=0.1, weight_decay=0.01)
        opt = ShardedOptimizer(named, optim.Adam, lr=0.1, weight_decay=0.01)
        for step in range(3):
            _set_grads(named, step)
            _set_grads(dict(ref.named_parameters()), step)
            self.assertIsNone(opt.step())
            ref_opt.step()
        want = {n: p.detach().numpy() for n, p in ref.named_parameters()}
        for name, p in named.items():
            if isinstance(p, ShardedTensor):
                for shard in p.local_shards():
                    np.testing.assert_array_equal(shard.tensor.detach().numpy(),
                                                  want[name][_region(shard.metadata)], err_msg=name)
            else:
                np.testing.assert_array_equal(p.detach().numpy(), want[name])
        # the zero-size shards got (empty) state like every other shard
        st = opt.state[m.b.local_shards()[0].tensor]
        self.assertEqual(float(st["step"].item()), 3.0)
        self.assertEqual(st["exp_avg"].numel(), 20 if self.rank < 2 else 0)

    @with_comms(init_rpc=False)
    def test_named_params_with_plain_sharded_tensor_attributes(self):
        spec = ChunkShardingSpec(dim=0, placements=PLACEMENTS)
        m = _sharded_model(0)
        m.sub = nn.Module()
        m.sub.st = sharded_tensor.rand(spec, 8, 2)  # plain attributes, not parameters
        m.plain_st = sharded_tensor.rand(spec, 4, 4)
        m.alias = m.plain_st
        names = [n for n, _ in named_params_with_sharded_tensor(m)]
        # vars() ShardedTensors first (identity de-duplicated), then named_parameters()
        self.assertEqual(names, ["plain_st", "sub.st", "a", "b", "c", "d"])
        pre = [n for n, _ in named_params_with_sharded_tensor(m, prefix="net")]
        self.assertEqual(pre, ["net.plain_st", "net.sub.st", "a", "b", "c", "d"])
        flat = [n for n, _ in named_params_with_sharded_tensor(m, recurse=False)]
        self.assertEqual(flat, ["plain_st", "a", "b", "c", "d"])
        opt = ShardedOptimizer(dict(named_params_with_sharded_tensor(m)), optim.SGD, lr=0.1)
        self.assertEqual(len(opt.param_groups[0]["params"]), 6)  # one local shard each

    @with_comms(init_rpc=False)
    def test_shard_parameter_collective_errors_raise_on_every_rank(self):
        spec = ChunkShardingSpec(dim=0, placements=PLACEMENTS)
        lin = nn.Linear(4, 8)
        with self.assertRaisesRegex(ValueError, "src_rank=.* does not match with src_rank="):
            so.shard_parameter(lin, "weight", spec, src_rank=self.rank)
        self.assertNotIsInstance(lin.weight, ShardedTensor)  # untouched
        # a buffer is not a parameter: torch's register_parameter KeyError, after the scatter
        lin.register_buffer("buf", so.zeros(8, 2))
        with self.assertRaisesRegex(KeyError, "attribute 'buf' already exists"):
            so.shard_parameter(lin, "buf", spec)
        # a bad module on ONE rank: that rank raises its own error, every other rank is told
        # which rank failed -- nobody is left waiting in the collective
        odd = nn.Linear(4, 8)
        if self.rank == 2:
            odd.weight = nn.Parameter(so.zeros(4, 8).t())  # non-contiguous
        expect = ("param: weight is not a contiguous Tensor" if self.rank == 2
                  else "sharding failed on rank: 2: ValueError: param: weight is not a contiguous")
        with self.assertRaisesRegex(ValueError, expect):
            so.shard_parameter(odd, "weight", spec)
        missing = nn.Linear(4, 8) if self.rank != 1 else nn.ReLU()
        with self.assertRaisesRegex((AttributeError, ValueError),
                                    "has no attribute `weight`" if self.rank == 1
                                    else "sharding failed on rank: 1: AttributeError"):
            so.shard_parameter(missing, "weight", spec)
        # same spec and src_rank but a different shape on one rank (torch would scatter junk)
        wide = nn.Linear(4 if self.rank != 3 else 5, 8)
        with self.assertRaisesRegex(ValueError, r"tensor of shape \[8, [45]\] .* does not match"):
            so.shard_parameter(wide, "weight", spec)
        so.shard_parameter(lin, "weight", spec, src_rank=3)
        self.assertEqual(tuple(lin.weight.local_shards()[0].tensor.shape), (2, 4))
        self.assertTrue(lin.weight.local_shards()[0].tensor.requires_grad)
        self.assertEqual([n for n, _ in lin.named_parameters()], ["weight", "bias"])

    @with_comms(init_rpc=False)
    def test_state_dict_resume_reshard_rejection_and_add_param_group(self):
        # uninterrupted: 4 steps
        full = _sharded_model(0)
        full_named = dict(full.named_parameters())
        full_opt = ShardedOptimizer(full_named, optim.Adam, lr=0.05)
        for step in range(4):
            _set_grads(full_named, step)
            full_opt.step()

        # interrupted after 2 steps, checkpoint pickled, resumed in fresh objects
        a = _sharded_model(0)
        a_named = dict(a.named_parameters())
        a_opt = ShardedOptimizer(a_named, optim.Adam, lr=0.05)
        for step in range(2):
            _set_grads(a_named, step)
            a_opt.step()
        sd = a_opt.state_dict()
        lay = sd["layouts"]["a"]
        self.assertEqual(lay["type"], "ShardedTensor")
        self.assertEqual(lay["size"], (21, 10))
        self.assertEqual(len(lay["shards"]), 4)
        offs = (6 * self.rank, 0)
        self.assertEqual(lay["local_shards"],
                         ((offs, (6 if self.rank < 3 else 3, 10), f"rank:{self.rank}/cpu"),))
        self.assertEqual(len(sd["state"]["b"]), 1)  # one dict per local shard
        blob = pickle.dumps({"model": _local(a_named), "optim": sd})

        ck = pickle.loads(blob)
        b = _sharded_model(7)  # another init
        b_named = dict(b.named_parameters())
        with so.no_grad():
            for name, p in b_named.items():
                if isinstance(p, ShardedTensor):
                    for shard, saved in zip(p.local_shards(), ck["model"][name]):
                        shard.tensor.copy_(so.from_numpy(saved))
                else:
                    p.copy_(so.from_numpy(ck["model"][name]))
        b_opt = ShardedOptimizer(b_named, optim.Adam, lr=1.0)
        b_opt.load_state_dict(ck["optim"])
        self.assertEqual(b_opt.param_groups[0]["lr"], 0.05)
        for step in range(2, 4):
            _set_grads(b_named, step)
            b_opt.step()
        got, want = _local(b_named), _local(full_named)
        for name, w in want.items():
            g = got[name]
            if isinstance(w, list):
                self.assertEqual(len(g), len(w))
                for x, y in zip(g, w):
                    np.testing.assert_array_equal(x, y, err_msg=name)
            else:
                np.testing.assert_array_equal(g, w, err_msg=name)

        # a differently sharded optimizer refuses the checkpoint, on every rank
        reversed_spec = ChunkShardingSpec(dim=0, placements=PLACEMENTS[::-1])
        other = _sharded_model(0, specs={"a": reversed_spec})
        other_opt = ShardedOptimizer(dict(other.named_parameters()), optim.Adam, lr=0.05)
        with self.assertRaisesRegex(ValueError, r"parameter 'a' is laid out differently .*saved "
                                    r"layout .*'rank:0/cpu'.*current layout"):
            other_opt.load_state_dict(ck["optim"])
        self.assertEqual(len(other_opt.state), 0)
        by_cols = _sharded_model(0, specs={"a": ChunkShardingSpec(dim=1, placements=PLACEMENTS)})
        by_cols_opt = ShardedOptimizer(dict(by_cols.named_parameters()), optim.Adam, lr=0.05)
        with self.assertRaisesRegex(ValueError, "parameter 'a' is laid out differently"):
            by_cols_opt.load_state_dict(ck["optim"])

        # add_param_group with a ShardedTensor, then a state_dict round trip
        c = _sharded_model(0)
        c_opt = ShardedOptimizer({"a": c.a, "d": c.d}, optim.SGD, lr=0.1, momentum=0.9)
        c_opt.add_param_group({"params": {"b": c.b, "c": c.c}, "lr": 0.01})
        self.assertEqual(c_opt.param_names, ["a", "d", "b", "c"])
        self.assertEqual(len(c_opt.param_groups[1]["params"]), 2)  # one local shard each
        _set_grads({"a": c.a, "b": c.b, "c": c.c, "d": c.d}, 0)
        c_opt.step()
        csd = c_opt.state_dict()
        self.assertEqual([g["params"] for g in csd["param_groups"]], [["a", "d"], ["b", "c"]])
        self.assertIn("momentum_buffer", csd["state"]["c"][0])
        c2 = _sharded_model(0)
        c2_opt = ShardedOptimizer({"a": c2.a, "d": c2.d}, optim.SGD, lr=0.1, momentum=0.9)
        c2_opt.add_param_group({"params": {"b": c2.b, "c": c2.c}, "lr": 0.01})
        c2_opt.load_state_dict(pickle.loads(pickle.dumps(csd)))
        buf = c2_opt.state[c2.c.local_shards()[0].tensor]["momentum_buffer"]
        np.testing.assert_array_equal(buf.numpy(), csd["state"]["c"][0]["momentum_buffer"].numpy())
