"""DistributedDataParallel on Gloo ranks: training equals single-process training on the
concatenated batch (1-4 ranks, several buckets, plain and bucket-view gradients), no_sync
accumulation, unused parameters (detected, or torch's error at the next forward), the
broadcasts from rank 0, ShardedTensor params left alone, and argument errors."""
import numpy as np

import shardopt as so
import shardopt.distributed as dist
from shardopt import nn, optim
from shardopt.nn.parallel import DistributedDataParallel as DDP
from shardopt.testing import MultiProcessTestCase, run_tests, with_comms

from _dp_common import (Net, assert_close_params, batch, loss_fn, params_np,
                        reference)

STEPS = 4


def _sgd(params):
    return optim.SGD(params, lr=0.1, momentum=0.9)


def _train_ddp(tc, steps, **ddp_kwargs):
    # rank-dependent init: DDP must broadcast rank 0's parameters
    model = Net(seed=tc.rank * 7)
    ddp = DDP(model, bucket_cap_mb=40 * 4 / 2**20, **ddp_kwargs)  # ~40-float buckets
    opt = _sgd(ddp.parameters())
    for step in range(steps):
        x, y = batch(step, tc.world_size, tc.rank)
        opt.zero_grad()
        loss_fn(ddp(x), y).backward()
        opt.step()
    return ddp


class _Equivalence:
    def setUp(self):
        super().setUp()
        self._spawn_processes()

    @with_comms(backend="gloo")
    def test_matches_single_process(self):
        ddp = _train_ddp(self, STEPS)
        self.assertGreater(len(ddp._buckets), 1)
        assert_close_params(self, params_np(ddp.module), reference(self.world_size, STEPS, _sgd))

    @with_comms(backend="gloo")
    def test_gradient_as_bucket_view(self):
        ddp = _train_ddp(self, STEPS, gradient_as_bucket_view=True)
        for p, view in zip(ddp._params, ddp._param_view):
            self.assertEqual(p.grad.data_ptr(), view.data_ptr())
        assert_close_params(self, params_np(ddp.module), reference(self.world_size, STEPS, _sgd))


class TestDDPWorld1(_Equivalence, MultiProcessTestCase):
    @property
    def world_size(self):
        return 1


class TestDDPWorld2(_Equivalence, MultiProcessTestCase):
    @property
    def world_size(self):
        return 2


class TestDDPWorld3(_Equivalence, MultiProcessTestCase):
    @property
    def world_size(self):
        return 3


class TestDDPWorld4(_Equivalence, MultiProcessTestCase):
    @property
    def world_size(self):
        return 4


class _Unused(nn.Module):
    def __init__(self):
        super().__init__()
        so.manual_seed(0)
        self.used = nn.Linear(4, 2)
        self.unused = nn.Linear(4, 2)      # never used by anyone
        self.sometimes = nn.Parameter(so.ones(2))  # used on rank 1 only

    def forward(self, x, rank):
        out = self.used(x)
        if rank == 1:
            out = out * self.sometimes
        return out


class TestDDPBehaviour(MultiProcessTestCase):
    @property
    def world_size(self):
        return 2

    def setUp(self):
        super().setUp()
        self._spawn_processes()

    @with_comms(backend="gloo")
    def test_no_sync_accumulates_then_reduces_the_sum(self):
        model = Net(seed=self.rank)
        ddp = DDP(model)
        ref = Net(seed=0)
        # two micro-batches: the first under no_sync stays local, the second reduces both
        for micro in range(2):
            x, y = batch(micro, self.world_size, self.rank)
            if micro == 0:
                with ddp.no_sync():
                    loss_fn(ddp(x), y).backward()
                local = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
            else:
                loss_fn(ddp(x), y).backward()
            xf, yf = batch(micro, self.world_size)
            loss_fn(ref(xf), yf).backward()
        # the no_sync gradient was this rank's own (it differs between ranks)
        other = [None] * 2
        dist.all_gather_object(other, local)
        self.assertFalse(np.allclose(other[0]["fc1.weight"], other[1]["fc1.weight"]))
        for n, p in model.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), dict(ref.named_parameters())[n].grad.numpy(),
                                       rtol=1e-5, atol=1e-6, err_msg=n)

    @with_comms(backend="gloo")
    def test_find_unused_parameters(self):
        m = _Unused()
        ddp = DDP(m, find_unused_parameters=True)
        x = so.ones(3, 4) * (self.rank + 1)
        for _ in range(2):  # twice: the per-iteration state resets
            m.zero_grad()
            ddp(x, self.rank).sum().backward()
            self.assertIsNone(m.unused.weight.grad)
            self.assertIsNone(m.unused.bias.grad)
            # used on rank 1 only: both ranks hold the average (rank 0 contributed zeros)
            g = m.sometimes.grad.numpy()
            w = m.used.weight.detach()
            b = m.used.bias.detach()
            out1 = (so.ones(3, 4) * 2) @ w.t() + b
            np.testing.assert_allclose(g, out1.sum(0).numpy() / 2, rtol=1e-6)
            np.testing.assert_allclose(m.used.bias.grad.numpy(),
                                       ((3 + 3 * m.sometimes.detach()) / 2).numpy(), rtol=1e-6)

    @with_comms(backend="gloo")
    def test_unused_parameter_without_detection_fails_at_next_forward(self):
        m = _Unused()
        ddp = DDP(m)
        x = so.ones(3, 4)
        ddp(x, 0).sum().backward()   # backward itself completes
        with self.assertRaisesRegex(RuntimeError, "Expected to have finished reduction in the "
                                    "prior iteration") as cm:
            ddp(x, 0)
        self.assertIn("find_unused_parameters=True", str(cm.exception))
        self.assertIn("unused.weight", str(cm.exception))

    @with_comms(backend="gloo")
    def test_broadcasts_from_rank0(self):
        class WithBuffer(nn.Module):
            def __init__(self, seed):
                super().__init__()
                so.manual_seed(seed)
                self.lin = nn.Linear(3, 3)
                self.register_buffer("count", so.zeros(1))

            def forward(self, x):
                self.count.add_(1.0 + self.rank_bump)
                return self.lin(x)

        m = WithBuffer(seed=self.rank + 1)
        m.rank_bump = float(self.rank)
        ddp = DDP(m)
        got = [None] * 2
        dist.all_gather_object(got, {n: p.detach().numpy() for n, p in m.named_parameters()})
        for n in got[0]:
            np.testing.assert_array_equal(got[0][n], got[1][n])
        ddp(so.ones(1, 3))
        ddp(so.ones(1, 3))
        # before each forward rank 0's buffer is broadcast: 1 (after 1st) -> bcast -> +1/+2
        self.assertEqual(float(m.count.numpy()[0]), 2.0 + self.rank)
        ddp2 = DDP(WithBuffer(seed=3), broadcast_buffers=False)
        ddp2.module.rank_bump = float(self.rank)
        ddp2(so.ones(1, 3))
        ddp2(so.ones(1, 3))
        self.assertEqual(float(ddp2.module.count.numpy()[0]), 2.0 * (1 + self.rank))

    @with_comms(backend="gloo")
    def test_buckets_launch_during_backward(self):
        # with ~40-float buckets the first all_reduce is issued while gradients of earlier
        # layers are still to come, and the issue order is the bucket order
        model = Net(seed=0)
        ddp = DDP(model, bucket_cap_mb=40 * 4 / 2**20)
        launches = []
        real = dist.all_reduce

        def spy(tensor, *args, **kwargs):
            launches.append((sum(ddp._ready), id(tensor)))
            return real(tensor, *args, **kwargs)

        x, y = batch(0, self.world_size, self.rank)
        out = ddp(x)
        dist.all_reduce = spy
        try:
            loss_fn(out, y).backward()
        finally:
            dist.all_reduce = real
        flats = [id(b["flat"]) for b in ddp._buckets]
        self.assertEqual([t for _, t in launches], flats)
        self.assertLess(launches[0][0], len(ddp._params))   # before the last gradient

    @with_comms(backend="gloo")
    def test_sharded_params_are_left_alone(self):
        from shardopt.sharded_tensor import ShardedTensor
        from shardopt.sharding_spec import ChunkShardingSpec
        m = nn.Linear(4, 6)
        spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(2)])
        so.shard_parameter(m, "weight", spec)
        local = m.weight.local_shards()[0].tensor
        with so.no_grad():
            local.fill_(float(self.rank + 1))   # rank-specific shard contents
        ddp = DDP(m)
        self.assertIsInstance(m.weight, ShardedTensor)
        self.assertEqual(len(ddp._params), 1)   # only the (replicated) bias
        self.assertIs(ddp._params[0], m.bias)
        # the shard was neither broadcast from rank 0 nor touched
        np.testing.assert_array_equal(local.detach().numpy(), np.full((3, 4), self.rank + 1.0))

    @with_comms(backend="gloo")
    def test_argument_errors(self):
        frozen = nn.Linear(2, 2)
        frozen.requires_grad_(False)
        with self.assertRaisesRegex(RuntimeError, "doesn't have any parameter that requires"):
            DDP(frozen)
        with self.assertRaisesRegex(ValueError, "device_ids and output_device"):
            DDP(nn.Linear(2, 2), device_ids=[0])
        with self.assertRaisesRegex(TypeError, "must be a shardopt.nn.Module"):
            DDP(so.ones(2))


if __name__ == "__main__":
    run_tests()
