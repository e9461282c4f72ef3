"""Sharded F.linear / nn.Linear on 4 Gloo ranks: a ChunkShardingSpec weight on dim 0 (output
features) or dim 1 (input features), the input and the result replicated.

Reference: float64 NumPy (y = x W^T + b; for the loss sum(y * g): dW = g^T x, dx = g W,
db = sum g), checked for the forward, the gradient that reaches each rank's local shard
(its slice of dW), the input's and the bias's gradients.  Shapes cover even shards, uneven
ones (10 rows over 4 ranks: 3, 3, 3, 1) and a rank without a shard (3 rows: 1, 1, 1, 0).
Then a few training steps with ShardedOptimizer against the same model trained unsharded.
"""
import numpy as np

import shardopt as torch
import shardopt.distributed as dist
from shardopt import nn, optim, sharded_tensor
from shardopt.nn import functional as F
from shardopt.sharded_optim import ShardedOptimizer, named_params_with_sharded_tensor
from shardopt.sharded_tensor import ShardedTensor
from shardopt.sharding_spec import ChunkShardingSpec, EnumerableShardingSpec, ShardMetadata
from shardopt.testing import ShardedTensorTestBase, with_comms

gloo = with_comms(init_rpc=False, backend="gloo")

TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=2e-5)}


def spec(dim, ranks=(0, 1, 2, 3)):
    return ChunkShardingSpec(dim=dim, placements=[f"rank:{r}/cpu" for r in ranks])


def _np(t):
    return t.detach().numpy().astype(np.float64)


def _same_on_every_rank(seed, shape, dtype):
    """A random tensor, the same on every rank (same seed)."""
    rs = np.random.RandomState(seed)
    return torch.from_numpy(rs.standard_normal(shape).astype(
        np.float64 if dtype == torch.float64 else np.float32))


def _shard_slice(st, full):
    (shard,) = st.local_shards()
    o, s = shard.metadata.shard_offsets, shard.metadata.shard_sizes
    return full[o[0]:o[0] + s[0], o[1]:o[1] + s[1]], shard.tensor


class TestShardedLinear(ShardedTensorTestBase):
    def _check_linear(self, dim, out_f, in_f, batch, dtype, bias, through_module):
        seed = 1000 * dim + 10 * out_f + in_f
        w = _same_on_every_rank(seed, (out_f, in_f), dtype)
        b = _same_on_every_rank(seed + 1, (out_f,), dtype) if bias else None
        x = _same_on_every_rank(seed + 2, batch + (in_f,), dtype).requires_grad_(True)
        g = _same_on_every_rank(seed + 3, batch + (out_f,), dtype)
        lin = nn.Linear(in_f, out_f, bias=bias, dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(w)
            if bias:
                lin.bias.copy_(b)
        torch.shard_parameter(lin, "weight", spec(dim))
        self.assertIsInstance(lin.weight, ShardedTensor)
        y = lin(x) if through_module else F.linear(x, lin.weight, lin.bias)
        self.assertNotIsInstance(y, ShardedTensor)
        self.assertEqual(tuple(y.shape), batch + (out_f,))
        self.assertEqual(y.dtype, dtype)
        (y * g).sum().backward()

        xn, wn, gn = _np(x), _np(w), _np(g)
        want = xn @ wn.T + (_np(b) if bias else 0.0)
        tol = TOL[dtype]
        np.testing.assert_allclose(_np(y), want, **tol)
        g2, x2 = gn.reshape(-1, out_f), xn.reshape(-1, in_f)
        dw = g2.T @ x2
        want_slice, local = _shard_slice(lin.weight, dw)
        self.assertTrue(local.is_leaf)
        if local.numel():
            np.testing.assert_allclose(_np(local.grad), want_slice, **tol)
        np.testing.assert_allclose(_np(x.grad), gn @ wn, **tol)
        if bias:
            np.testing.assert_allclose(_np(lin.bias.grad), g2.sum(0), **tol)

    @gloo
    def test_forward_and_gradients_match_unsharded(self):
        for dtype in (torch.float64, torch.float32):
            for dim in (0, 1):
                # even, uneven (3, 3, 3, 1) and a rank without a shard (1, 1, 1, 0)
                for out_f, in_f in ((8, 12), (10, 6), (6, 10), (3, 5), (5, 3)):
                    self._check_linear(dim, out_f, in_f, (7,), dtype, True, True)
        # no bias, 3-D input, F.linear called directly; dim=-1 is dim 1
        self._check_linear(0, 10, 6, (2, 3), torch.float64, False, False)
        self._check_linear(1, 6, 10, (2, 3), torch.float64, True, False)
        lin = nn.Linear(6, 4, dtype=torch.float64)
        full = _np(lin.weight)
        torch.shard_parameter(lin, "weight", spec(-1))
        x = _same_on_every_rank(5, (3, 6), torch.float64)
        np.testing.assert_allclose(_np(lin(x)), _np(x) @ full.T + _np(lin.bias), rtol=1e-12)

    @gloo
    def test_training_with_sharded_optimizer_matches_unsharded(self):
        # x -> fc1 (rows sharded, uneven: 10 over 4 ranks) -> GELU -> fc2 (columns sharded)
        # -> y; float64, Adam; every rank trains the same unsharded copy as the reference.
        def build():
            torch.manual_seed(3)
            return nn.Sequential(nn.Linear(5, 10, dtype=torch.float64), nn.GELU(),
                                 nn.Linear(10, 3, dtype=torch.float64))
        model, ref = build(), build()
        torch.shard_parameter(model[0], "weight", spec(0))
        torch.shard_parameter(model[2], "weight", spec(1))
        opt = ShardedOptimizer(dict(named_params_with_sharded_tensor(model)), optim.Adam,
                               lr=0.05)
        ref_opt = optim.Adam(ref.parameters(), lr=0.05)
        losses = []
        for step in range(5):
            x = _same_on_every_rank(100 + step, (16, 5), torch.float64)
            t = _same_on_every_rank(200 + step, (16, 3), torch.float64)
            for m, o in ((model, opt), (ref, ref_opt)):
                o.zero_grad()
                loss = F.mse_loss(m(x), t)
                loss.backward()
                o.step()
                losses.append(loss.item())
        np.testing.assert_allclose(losses[0::2], losses[1::2], rtol=1e-10)
        self.assertLess(losses[-1], losses[1])  # it trained
        for (name, p), (rname, rp) in zip(named_params_with_sharded_tensor(model),
                                          ref.named_parameters()):
            self.assertEqual(name, rname)
            want = _np(rp)
            if isinstance(p, ShardedTensor):
                want, local = _shard_slice(p, want)
                got = _np(local)
            else:
                got = _np(p)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)

    @gloo
    def test_errors(self):
        lin = nn.Linear(6, 8)
        torch.shard_parameter(lin, "weight", spec(0))
        with self.assertRaisesRegex(RuntimeError, "mat1 and mat2 shapes cannot be multiplied"):
            lin(torch.randn((2, 5)))
        with self.assertRaisesRegex(RuntimeError, "same dtype"):
            lin(torch.randn((2, 6), dtype=torch.float64))
        with self.assertRaisesRegex(RuntimeError, "bias must have shape"):
            F.linear(torch.randn((2, 6)), lin.weight, torch.zeros((3,)))
        with self.assertRaisesRegex(TypeError, "'input' must be a Tensor"):
            F.linear([1.0] * 6, lin.weight)
        # only ChunkShardingSpec: a 2x2 grid of shards is not supported
        grid = EnumerableShardingSpec([
            ShardMetadata(shard_offsets=[i, j], shard_sizes=[4, 3], placement=f"rank:{2 * (i // 4) + j // 3}/cpu")
            for i in (0, 4) for j in (0, 3)])
        with self.assertRaisesRegex(NotImplementedError, "only ChunkShardingSpec"):
            F.linear(torch.randn((2, 6)), sharded_tensor.empty(grid, 8, 6))
        with self.assertRaisesRegex(ValueError, "weight needs to be 2-D"):
            F.linear(torch.randn((2, 6)), sharded_tensor.empty(spec(0), 6))
        # a user implementation registered for F.linear replaces the built-in one (each test
        # runs in fresh processes, so the registration does not leak)
        from shardopt.sharded_tensor import custom_sharded_op_impl

        @custom_sharded_op_impl(F.linear)
        def user_linear(types, args, kwargs, process_group):
            return "user linear"
        self.assertEqual(lin(torch.randn((2, 6))), "user linear")
        # every rank raised before any collective: the group still works
        t = torch.ones((1,))
        dist.all_reduce(t)
        self.assertEqual(t.item(), 4.0)
