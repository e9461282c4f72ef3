"""ShardingPlan / ShardingPlanner / Sharder and shard_module (torch_shard_spec: the
sharding-plan API of torch.distributed._shard).

Plan validation happens before anything is sharded or communicated, so the error cases run
in this process; the sharding itself runs on 4 Gloo ranks (``rank:i/cpu``)."""
import pytest

import shardopt as torch
import shardopt.distributed as dist
import shardopt.nn as nn
import shardopt.nn.functional as F
from shardopt import sharded_tensor
from shardopt.sharded_tensor import Shard, ShardedTensor
from shardopt.sharder import Sharder
from shardopt.sharding_plan import ShardingPlan, ShardingPlanner, shard_module
from shardopt.sharding_plan._apply import _collect_local_shard, _reshard_output
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, with_comms

RANKS = [f"rank:{r}/cpu" for r in range(4)]


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class OutputFeatureSplit(nn.Module):
    """A Linear whose output features are split over the ranks: forward returns a
    ShardedTensor of shape (batch, out_features), sharded on dim 1."""

    def __init__(self, linear, placements):
        super().__init__()
        self.out_features = linear.weight.size(0)
        self.weight = linear.weight
        self.bias = linear.bias
        shard_module(self, ShardingPlan(plan={
            "weight": ChunkShardingSpec(dim=0, placements=placements),
            "bias": ChunkShardingSpec(dim=0, placements=placements)}))

    def forward(self, x):
        w = self.weight.local_shards()[0]
        local = F.linear(x, w.tensor, self.bias.local_tensor())
        offset = w.metadata.shard_offsets[0]
        shard = Shard.from_tensor_and_offsets(local, [0, offset], dist.get_rank())
        return sharded_tensor.init_from_local_shards([shard], x.size(0), self.out_features)


class SplitSharder(Sharder):
    def __init__(self, placements):
        self.placements = placements

    def shard(self, module):
        if not isinstance(module, nn.Linear):
            raise RuntimeError("SplitSharder shards nn.Linear only")
        return OutputFeatureSplit(module, self.placements)


class ReturnsShardedTensor(nn.Module):
    def __init__(self, st):
        super().__init__()
        self.st = st

    def forward(self):
        return self.st


class EveryParamPlanner(ShardingPlanner):
    def __init__(self, dim):
        self.dim = dim

    def build_plan(self, module):
        return ShardingPlan(plan={name: ChunkShardingSpec(dim=self.dim, placements=RANKS)
                                  for name, _ in module.named_parameters()})


# ------------------------------------------------------------------ in-process checks


def test_plan_defaults_and_abstract_bases():
    spec = ChunkShardingSpec(dim=0, placements=RANKS)
    plan = ShardingPlan(plan={"fc1.weight": spec})
    assert plan.output_plan is None and plan.return_local_tensor is None
    assert plan == ShardingPlan({"fc1.weight": spec}, None, None)
    with pytest.raises(TypeError):
        Sharder()
    with pytest.raises(TypeError):
        ShardingPlanner()
    plan = EveryParamPlanner(1).build_plan(TwoLayer())
    assert sorted(plan.plan) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    assert all(s.dim == 1 for s in plan.plan.values())


@pytest.mark.parametrize("plan, exc, match", [
    (ShardingPlan(plan={"fc1.weight": "not a spec"}), TypeError,
     "Only `ShardingSpec` and `Sharder` are supported to shard 'fc1.weight'"),
    (ShardingPlan(plan={"fc3.weight": ChunkShardingSpec(0, RANKS)}), AttributeError,
     "TwoLayer has no attribute `fc3`"),
    (ShardingPlan(plan={"fc1.biass": ChunkShardingSpec(0, RANKS)}), AttributeError,
     "Linear has no attribute `biass`"),
    (ShardingPlan(plan={"": SplitSharder(RANKS)}), KeyError,
     "Module path must not be empty for custom sharder!"),
    (ShardingPlan(plan={"fc1.weight": SplitSharder(RANKS)}), AttributeError,
     "`weight` is not an nn.Module"),
    (ShardingPlan(plan={"fc1": SplitSharder(RANKS),
                        "fc1.weight": ChunkShardingSpec(0, RANKS)}), RuntimeError,
     "should not conflict with the submodule tree"),
    (ShardingPlan(plan={}, output_plan={"fc1": "row"}), TypeError,
     "Only `ShardingSpec` is supported as output_plan for 'fc1'"),
    (ShardingPlan(plan={}, output_plan={"fc9": ChunkShardingSpec(0, RANKS)}), AttributeError,
     "has no attribute `fc9`"),
    (ShardingPlan(plan={}, return_local_tensor=["fc1.weight"]), AttributeError,
     "`weight` is not an nn.Module"),
    (ShardingPlan(plan={}, return_local_tensor="fc1"), TypeError,
     "return_local_tensor must be a list"),
    ({"fc1.weight": ChunkShardingSpec(0, RANKS)}, TypeError, "plan must be a ShardingPlan"),
])
def test_invalid_plans_raise_before_sharding(plan, exc, match):
    model = TwoLayer()
    before = {n: p for n, p in model.named_parameters()}
    with pytest.raises(exc, match=match):
        # no process group exists here: an invalid plan must fail before any collective
        shard_module(model, plan)
    assert {n: p for n, p in model.named_parameters()} == before
    assert not model.fc1._forward_hooks and not model._forward_hooks


def test_parameter_beside_a_sharder_path_is_no_conflict():
    # "fc1x" is not inside the tree of a Sharder at "fc1" (torch's prefix test says it is)
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(2, 2)
            self.fc1x = nn.Linear(2, 2)
    plan = ShardingPlan(plan={"fc1": SplitSharder(RANKS),
                              "fc1x.weight": ChunkShardingSpec(0, RANKS)})
    # validation passes; sharding then needs a process group, which does not exist here
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        shard_module(M(), plan)


def test_hooks_leave_other_outputs_alone():
    spec = ChunkShardingSpec(dim=0, placements=RANKS)
    lin = nn.Linear(3, 2)
    x = torch.ones(4, 3)
    expected = lin(x)
    _reshard_output(lin, spec)
    _collect_local_shard(lin)
    out = lin(x)
    assert type(out) is type(expected)
    assert (out.detach().numpy() == expected.detach().numpy()).all()


# ------------------------------------------------------------------ 4 ranks


class TestShardModule(ShardedTensorTestBase):
    @with_comms(init_rpc=False, backend="gloo")
    def test_planner_spec_entries_and_sharder(self):
        torch.manual_seed(0)
        model = TwoLayer()
        reference = TwoLayer()
        reference.load_state_dict(model.state_dict())
        shard_module(model, EveryParamPlanner(0).build_plan(model))
        for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
            st = model.get_parameter(name)
            self.assertIsInstance(st, ShardedTensor)
            full = reference.get_parameter(name)
            lo, n = [(0, 2), (2, 2), (4, 2), (6, 2)][self.rank] if full.size(0) == 8 else \
                [(0, 2), (2, 2), (4, 1), (5, 0)][self.rank]
            self.assertEqual(st.local_tensor(), full.detach().narrow(0, lo, n))

        # a Sharder's module is set on the parent as attribute "mod_name" (torch's
        # assignment); fc1 itself stays in place.  return_local_tensor, planned for
        # "mod_name" in a second call, hands back this rank's columns of its output
        torch.manual_seed(1)
        model = TwoLayer()
        reference = TwoLayer()
        reference.load_state_dict(model.state_dict())
        fc1 = model.fc1
        shard_module(model, ShardingPlan(plan={"fc1": SplitSharder(RANKS)}))
        self.assertIs(model.fc1, fc1)
        self.assertIsInstance(model.mod_name, OutputFeatureSplit)
        self.assertIn("mod_name", dict(model.named_children()))
        self.assertIsInstance(model.mod_name.weight, ShardedTensor)
        x = torch.rand(3, 6)
        dist.broadcast(x, 0)
        self.assertIsInstance(model.mod_name(x), ShardedTensor)
        shard_module(model, ShardingPlan(plan={}, return_local_tensor=["mod_name"]))
        out = model.mod_name(x)
        self.assertNotIsInstance(out, ShardedTensor)
        self.assertEqual(out, reference.fc1(x).detach().narrow(1, 2 * self.rank, 2))
        self.assertEqual(model.fc1(x), reference.fc1(x))  # the original is untouched

    @with_comms(init_rpc=False, backend="gloo")
    def test_output_plan_and_local_shard_squeeze(self):
        row = ChunkShardingSpec(dim=0, placements=RANKS)
        col = ChunkShardingSpec(dim=1, placements=RANKS)
        st = sharded_tensor.rand(row, 4, 6)  # one row per rank
        mod = ReturnsShardedTensor(st)
        shard_module(mod, ShardingPlan(plan={}, return_local_tensor=[""]))
        out = mod()
        self.assertEqual(out.shape, torch.Size([6]))  # the size-1 sharding dim is squeezed
        self.assertEqual(out, st.local_tensor()[0])

        mod = ReturnsShardedTensor(sharded_tensor.ones(row, 8, 8))
        shard_module(mod, ShardingPlan(plan={}, output_plan={"": col}))
        out = mod()
        self.assertEqual(out.sharding_spec(), col)
        self.assertEqual(out.local_tensor(), torch.ones(8, 2))

    @with_comms(init_rpc=False, backend="gloo")
    def test_sub_process_group(self):
        torch.manual_seed(2)
        model = TwoLayer()
        full = model.fc1.weight.detach().clone()
        pg = dist.new_group([2, 3])
        plan = ShardingPlan(plan={
            "fc1.weight": ChunkShardingSpec(dim=0, placements=["rank:2/cpu", "rank:3/cpu"]),
            "fc2.weight": ChunkShardingSpec(dim=1, placements=["rank:2/cpu", "rank:3/cpu"])})
        if self.rank >= 2:
            # src_rank is a rank of the sub-group: its rank 0 is global rank 2
            shard_module(model, plan, src_rank=0, process_group=pg)
            self.assertIsInstance(model.fc1.weight, ShardedTensor)
            self.assertEqual(model.fc1.weight.local_tensor(),
                             full.narrow(0, 4 * (self.rank - 2), 4))
            self.assertEqual(model.fc2.weight.local_tensor().shape, torch.Size([5, 4]))
        else:
            self.assertNotIsInstance(model.fc1.weight, ShardedTensor)
