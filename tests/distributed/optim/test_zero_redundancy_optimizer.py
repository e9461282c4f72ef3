"""ZeroRedundancyOptimizer on Gloo ranks, stage 1 (with DDP, torch's semantics) and stage 2
(flat partitions, reduce-scatter, no DDP): training equals single-process Adam on the
concatenated batch after several steps (1-4 ranks, uneven sizes, several buckets);
optimizer-state bytes per rank are 1/W of the single-process optimizer's (stage 2: within
one padding element per bucket); consolidated state dicts equal the single-process
optimizer's, load into either stage and any world size and resume exactly; add_param_group;
gradient accumulation; overlap; argument errors."""
import numpy as np

import shardopt as so
import shardopt.distributed as dist
from shardopt import nn, optim
from shardopt.distributed.optim import ZeroRedundancyOptimizer as ZeRO
from shardopt.nn.parallel import DistributedDataParallel as DDP
from shardopt.testing import MultiProcessTestCase, run_tests, with_comms

from _dp_common import (D_IN, D_OUT, Net, assert_close_params, batch, loss_fn, params_np,
                        reference)

STEPS = 4
CAP_MB = 40 * 4 / 2**20   # ~40-float buckets: several buckets for a 129-element model


def _adam(params):
    return optim.Adam(params, lr=0.01)


def _sgd(params):
    return optim.SGD(params, lr=0.05, momentum=0.9)


# (single-process maker, class, options): Adam is nearly invariant to the gradient's scale,
# so SGD with momentum also checks that gradients are averaged, not summed
OPTIMS = {"adam": (_adam, optim.Adam, {"lr": 0.01}),
          "sgd": (_sgd, optim.SGD, {"lr": 0.05, "momentum": 0.9})}


def _make(tc, stage, model=None, opt="adam", **kw):
    model = model or Net(seed=tc.rank * 7)  # rank-dependent: must be synced from rank 0
    _, cls, options = OPTIMS[opt]
    if stage == 1:
        ddp = DDP(model, bucket_cap_mb=CAP_MB)
        return ddp, model, ZeRO(ddp.parameters(), cls, **options, **kw)
    return model, model, ZeRO(model.parameters(), cls, zero_stage=2, bucket_cap_mb=CAP_MB,
                              **options, **kw)


def _train(tc, fwd, opt, steps, start=0):
    for step in range(start, start + steps):
        x, y = batch(step, tc.world_size, tc.rank)
        opt.zero_grad()
        loss_fn(fwd(x), y).backward()
        opt.step()


def _state_np(sd):
    return {i: {k: (v.numpy().copy() if hasattr(v, "numpy") else v) for k, v in st.items()}
            for i, st in sd["state"].items()}


class _Equivalence:
    def setUp(self):
        super().setUp()
        self._spawn_processes()

    def _check(self, stage, opt="adam", **kw):
        fwd, model, zero = _make(self, stage, opt=opt, **kw)
        _train(self, fwd, zero, STEPS)
        assert_close_params(self, params_np(model),
                            reference(self.world_size, STEPS, OPTIMS[opt][0]))
        if opt != "adam":
            return model, zero
        opt = zero
        # optimizer state: 1/W of single-process Adam's (exp_avg + exp_avg_sq + step)
        total = sum(p.numel() for p in model.parameters()) * 4 * 2
        per_rank = [None] * self.world_size
        dist.all_gather_object(per_rank, opt.state_bytes())
        if stage == 1:   # whole tensors: the ranks' states add up to the full state exactly
            self.assertEqual(sum(per_rank), total + 5 * 4)
        else:            # flat partitions: equal per rank, padding < W elements per bucket
            nb = len(opt._buckets2)
            for b in per_rank:
                self.assertEqual(b, per_rank[0])
                self.assertLessEqual(b, (total + nb * (self.world_size - 1) * 8) / self.world_size
                                     + nb * 4 + 1)
            self.assertGreaterEqual(per_rank[0] * self.world_size, total)
        return model, opt

    @with_comms(backend="gloo")
    def test_ddp_zero1_matches_single_process(self):
        self._check(1)

    @with_comms(backend="gloo")
    def test_ddp_zero1_bucket_view_sgd_matches_single_process(self):
        self._check(1, opt="sgd", parameters_as_bucket_view=True)

    @with_comms(backend="gloo")
    def test_zero2_sgd_matches_single_process(self):
        self._check(2, opt="sgd")

    @with_comms(backend="gloo")
    def test_zero2_matches_single_process(self):
        model, opt = self._check(2)
        self.assertGreater(len(opt._buckets2), 1)
        for p in model.parameters():   # gradients were handed to the partitions
            self.assertIsNone(p.grad)


    @with_comms(backend="gloo")
    def test_zero2_direct_buckets_match_single_process(self):
        # fc2.weight (256 KiB) is a bucket of its own, reduced from its .grad and gathered
        # into its storage, wherever 65536 divides by W (1, 2, 4; not 3: flat bucket)
        def build(seed):
            so.manual_seed(seed)
            return nn.Sequential(nn.Linear(D_IN, 256), nn.ReLU(), nn.Linear(256, 256),
                                 nn.ReLU(), nn.Linear(256, D_OUT))

        model = build(self.rank + 3)
        zero = ZeRO(model.parameters(), optim.SGD, lr=0.05, momentum=0.9, zero_stage=2,
                    bucket_cap_mb=CAP_MB)
        direct = [b for b in zero._buckets2 if b["direct"]]
        self.assertEqual(len(direct), 0 if self.world_size == 3 else 1)
        _train(self, model, zero, STEPS)
        ref = build(3)
        ref_opt = _sgd(ref.parameters())
        for step in range(STEPS):
            x, y = batch(step, self.world_size)
            ref_opt.zero_grad()
            loss_fn(ref(x), y).backward()
            ref_opt.step()
        assert_close_params(self, params_np(model), params_np(ref))


class TestZeROWorld1(_Equivalence, MultiProcessTestCase):
    @property
    def world_size(self):
        return 1


class TestZeROWorld2(_Equivalence, MultiProcessTestCase):
    @property
    def world_size(self):
        return 2


class TestZeROWorld3(_Equivalence, MultiProcessTestCase):
    @property
    def world_size(self):
        return 3


class TestZeROWorld4(_Equivalence, MultiProcessTestCase):
    @property
    def world_size(self):
        return 4


def _single_process(world, steps):
    model = Net(0)
    opt = _adam(model.parameters())
    for step in range(steps):
        x, y = batch(step, world)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return model, opt


class TestZeROStateDict(MultiProcessTestCase):
    @property
    def world_size(self):
        return 3

    def setUp(self):
        super().setUp()
        self._spawn_processes()

    def _roundtrip(self, stage):
        fwd, model, opt = _make(self, stage)
        _train(self, fwd, opt, 2)
        with self.assertRaisesRegex(RuntimeError, "has not been consolidated on this rank"):
            opt.state_dict()
        opt.consolidate_state_dict(to=1)
        ref_model, ref_opt = _single_process(self.world_size, 2)
        sd = None
        if self.rank == 1:
            sd = opt.state_dict()
            want = _state_np(ref_opt.state_dict())
            got = _state_np(sd)
            self.assertEqual(sorted(got), sorted(want))
            for i in want:
                for k in want[i]:
                    np.testing.assert_allclose(got[i][k], want[i][k], rtol=1e-5, atol=1e-7,
                                               err_msg=f"{i}/{k}")
            self.assertEqual(sd["param_groups"][0]["lr"], 0.01)
        else:
            with self.assertRaisesRegex(RuntimeError, "consolidate_state_dict"):
                opt.state_dict()
        return sd, ref_model, ref_opt

    @with_comms(backend="gloo")
    def test_consolidated_state_equals_single_process_and_reloads_across_stages(self):
        for stage in (1, 2):
            sd, ref_model, ref_opt = self._roundtrip(stage)
            box = [sd]
            dist.broadcast_object_list(box, src=1)
            sd = box[0]
            # load into the *other* stage, starting from the trained parameters, and resume
            other = 3 - stage
            model = Net(0)
            with so.no_grad():
                for p, q in zip(model.parameters(), ref_model.parameters()):
                    p.copy_(q)
            fwd, model, opt = _make(self, other, model=model)
            opt.load_state_dict(sd)
            _train(self, fwd, opt, 2, start=2)
            for step in range(2, 4):
                x, y = batch(step, self.world_size)
                ref_opt.zero_grad()
                loss_fn(ref_model(x), y).backward()
                ref_opt.step()
            assert_close_params(self, params_np(model), params_np(ref_model))

    @with_comms(backend="gloo")
    def test_loads_a_single_process_state_dict(self):
        # a state from world size 1 (a plain Adam) re-partitioned over 3 ranks
        ref_model, ref_opt = _single_process(self.world_size, 3)
        sd = ref_opt.state_dict()
        for stage in (1, 2):
            model = Net(0)
            with so.no_grad():
                for p, q in zip(model.parameters(), ref_model.parameters()):
                    p.copy_(q)
            fwd, model, opt = _make(self, stage, model=model)
            opt.load_state_dict(sd)
            _train(self, fwd, opt, 1, start=3)
            cont_model, cont_opt = _single_process(self.world_size, 4)
            assert_close_params(self, params_np(model), params_np(cont_model))

    @with_comms(backend="gloo")
    def test_add_param_group(self):
        for stage in (1, 2):
            so.manual_seed(5)
            extra = nn.Parameter(so.rand(6))
            model = Net(0)
            params = list(model.parameters())
            if stage == 1:
                opt = ZeRO(params, optim.SGD, lr=0.1)
            else:
                opt = ZeRO(params, optim.SGD, lr=0.1, zero_stage=2)
            opt.add_param_group({"params": [extra], "lr": 0.5})
            self.assertEqual(len(opt.param_groups), 2)
            x, y = batch(0, self.world_size, self.rank)
            opt.zero_grad()
            (loss_fn(model(x), y) + (extra * extra).sum()).backward()
            if stage == 1:  # no DDP here: average by hand
                for p in params + [extra]:
                    dist.all_reduce(p.grad)
                    p.grad.div_(self.world_size)
            opt.step()
            # d/dextra sum(extra^2) = 2 extra, lr 0.5: extra -> 0
            np.testing.assert_allclose(extra.detach().numpy(), np.zeros(6), atol=1e-6)


class TestZeRO2Backward(MultiProcessTestCase):
    @property
    def world_size(self):
        return 2

    def setUp(self):
        super().setUp()
        self._spawn_processes()

    @with_comms(backend="gloo")
    def test_reduce_scatters_launch_during_backward(self):
        from shardopt.distributed import distributed_c10d as c10d
        model, _, opt = _make(self, 2)
        launches = []
        real = c10d.reduce_scatter_tensor

        def spy(output, input, *args, **kwargs):
            launches.append(sum(len(b["ready"]) for b in opt._buckets2))
            return real(output, input, *args, **kwargs)

        x, y = batch(0, self.world_size, self.rank)
        out = model(x)
        c10d.reduce_scatter_tensor = spy
        try:
            loss_fn(out, y).backward()
        finally:
            c10d.reduce_scatter_tensor = real
        nparams = len(list(model.parameters()))
        self.assertEqual(len(launches), len(opt._buckets2))
        self.assertLess(launches[0], nparams)   # the first one before the last gradient
        opt.step()

    @with_comms(backend="gloo")
    def test_zero2_gradient_accumulation(self):
        # two backward passes per step: the reduced shards accumulate, as .grad would
        model, _, opt = _make(self, 2, opt="sgd")
        ref = Net(0)
        ref_opt = _sgd(ref.parameters())
        for step in range(2):
            opt.zero_grad()
            ref_opt.zero_grad()
            for micro in (2 * step, 2 * step + 1):
                x, y = batch(micro, self.world_size, self.rank)
                loss_fn(model(x), y).backward()
                xf, yf = batch(micro, self.world_size)
                loss_fn(ref(xf), yf).backward()
            opt.step()
            ref_opt.step()
        assert_close_params(self, params_np(model), params_np(ref))


class TestZeROErrors(MultiProcessTestCase):
    @property
    def world_size(self):
        return 2

    def setUp(self):
        super().setUp()
        self._spawn_processes()

    @with_comms(backend="gloo")
    def test_argument_errors(self):
        m = Net(0)
        with self.assertRaisesRegex(ValueError, "empty parameter list"):
            ZeRO([], optim.Adam)
        with self.assertRaisesRegex(TypeError, "iterable of Tensors"):
            ZeRO(so.ones(2), optim.Adam)
        with self.assertRaisesRegex(ValueError, "same dense type"):
            ZeRO([nn.Parameter(so.ones(2)), nn.Parameter(so.ones(2).double())], optim.Adam)
        with self.assertRaises(NotImplementedError):
            ZeRO(m.parameters(), optim.Adam, overlap_with_ddp=True)
        with self.assertRaisesRegex(ValueError, "zero_stage"):
            ZeRO(m.parameters(), optim.Adam, zero_stage=3)
        ddp = DDP(Net(0))
        with self.assertRaisesRegex(ValueError, "DistributedDataParallel"):
            ZeRO(ddp.parameters(), optim.Adam, zero_stage=2)


if __name__ == "__main__":
    run_tests()
