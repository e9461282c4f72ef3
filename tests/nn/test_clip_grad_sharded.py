"""clip_grad_norm_(..., process_group=) over ShardedTensor parameters on 4 Gloo ranks: the
total norm and the clipped gradients equal clipping the unsharded model (row- and
column-sharded parameters, uneven and empty shards, a replicated parameter counted once),
for norm types 2, 1, 3 and inf; and ShardedTensors without a process group raise."""
import math

import numpy as np

import shardopt as so
from shardopt import nn
from shardopt.nn.utils import clip_grad_norm_, clip_grad_value_
from shardopt.sharded_optim import named_params_with_sharded_tensor
from shardopt.sharded_tensor import ShardedTensor
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, with_comms

PLACEMENTS = [f"rank:{r}/cpu" for r in range(4)]
SHAPES = {"a": ((21, 10), 0), "b": ((2, 20), 0), "c": ((2, 20), 1)}


class _Params(nn.Module):
    def __init__(self, dtype=np.float32):
        super().__init__()
        so.manual_seed(0)
        dt = so.float64 if dtype == np.float64 else so.float32
        for name, (shape, _) in SHAPES.items():
            setattr(self, name, nn.Parameter(so.rand(*shape).to(dt)))
        self.d = nn.Parameter(so.rand(3).to(dt))  # replicated on every rank


def _region(md):
    return tuple(slice(o, o + s) for o, s in zip(md.shard_offsets, md.shard_sizes))


def _full_grads(scale):
    rs = np.random.RandomState(7)
    out = {n: (rs.standard_normal(shape) * scale) for n, (shape, _) in SHAPES.items()}
    out["d"] = rs.standard_normal(3) * scale
    return out


def _sharded(full, dtype):
    m = _Params(dtype)
    for name, (_, dim) in SHAPES.items():
        so.shard_parameter(m, name, ChunkShardingSpec(dim=dim, placements=PLACEMENTS))
    named = dict(named_params_with_sharded_tensor(m))
    for name, p in named.items():
        if isinstance(p, ShardedTensor):
            for shard in p.local_shards():
                region = full[name][_region(shard.metadata)]
                shard.tensor.grad = so.from_numpy(np.ascontiguousarray(region).astype(dtype))
        else:
            p.grad = so.from_numpy(full[name].astype(dtype))
    return named


class TestClipGradSharded(ShardedTensorTestBase):
    @with_comms(init_rpc=False)
    def test_global_norm_equals_unsharded(self):
        for norm_type in (2.0, 1.0, 3.0, math.inf):
            full = _full_grads(scale=2.0)
            named = _sharded(full, np.float64)
            total = clip_grad_norm_(list(named.values()), 1.0, norm_type=norm_type,
                                    process_group=named["a"]._process_group)
            flat = np.concatenate([g.ravel() for g in full.values()])
            want = (np.abs(flat).max() if math.isinf(norm_type)
                    else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type))
            np.testing.assert_allclose(total.item(), want, rtol=1e-13, err_msg=str(norm_type))
            coef = min(1.0, 1.0 / (want + 1e-6))
            for name, p in named.items():
                if isinstance(p, ShardedTensor):
                    for shard in p.local_shards():
                        np.testing.assert_allclose(shard.tensor.grad.numpy(),
                                                   full[name][_region(shard.metadata)] * coef,
                                                   rtol=1e-13)
                else:
                    np.testing.assert_allclose(p.grad.numpy(), full[name] * coef, rtol=1e-13)

    @with_comms(init_rpc=False)
    def test_float32_matches_unsharded_clip(self):
        full = _full_grads(scale=3.0)
        named = _sharded(full, np.float32)
        total = clip_grad_norm_(named.values(), 0.5, process_group=named["a"]._process_group)
        ref = _Params()
        for name, p in ref.named_parameters():
            p.grad = so.from_numpy(full[name].astype(np.float32))
        ref_total = clip_grad_norm_(ref.parameters(), 0.5)
        self.assertEqual(total.dtype, so.float32)
        np.testing.assert_allclose(total.item(), ref_total.item(), rtol=1e-6)
        want = {n: p.grad.numpy() for n, p in ref.named_parameters()}
        for name, p in named.items():
            if isinstance(p, ShardedTensor):
                for shard in p.local_shards():
                    np.testing.assert_allclose(shard.tensor.grad.numpy(),
                                               want[name][_region(shard.metadata)], rtol=2e-6)

    @with_comms(init_rpc=False)
    def test_without_process_group_raises_and_value_clip_is_local(self):
        full = _full_grads(scale=3.0)
        named = _sharded(full, np.float64)
        with self.assertRaisesRegex(ValueError, "parameters include ShardedTensors"):
            clip_grad_norm_(named.values(), 1.0)
        clip_grad_value_(named.values(), 0.25)
        for shard in named["a"].local_shards():
            np.testing.assert_array_equal(
                shard.tensor.grad.numpy(),
                np.clip(full["a"][_region(shard.metadata)], -0.25, 0.25))
        with self.assertRaisesRegex(ValueError, "norm_type=0.0 is not supported with "
                                                "process_group"):
            clip_grad_norm_(named.values(), 1.0, norm_type=0, process_group=named["a"]._process_group)
