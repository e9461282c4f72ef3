"""get_state_dict / set_state_dict on 2 ranks: state initialised without moving parameters,
the same keys on a rank that holds no shard, full tensors cut into shards, layout and key
errors."""
import numpy as np

import shardopt as so
from shardopt.distributed.checkpoint.state_dict import (get_state_dict, set_model_state_dict,
                                                        set_state_dict)
from shardopt.sharded_tensor import ShardedTensor
from shardopt.sharding_spec import EnumerableShardingSpec, ShardMetadata
from shardopt.testing import MultiProcessTestCase, with_comms

from _ckpt_net import SHAPES, blocks, build, chunk, full_values


def _on_rank0(shape, world):
    """An enumerable spec whose every block lives on rank 0."""
    spec = blocks(shape, world)
    return EnumerableShardingSpec([ShardMetadata(list(md.shard_offsets), list(md.shard_sizes),
                                                 "rank:0/cpu") for md in spec.shards])


class TestStateDict(MultiProcessTestCase):
    @property
    def world_size(self):
        return 2

    @with_comms(backend="gloo")
    def test_init_state_and_keys_on_every_rank(self):
        layout = {"a": lambda s, w: chunk(0, w), "b": None, "c": _on_rank0}
        model, opt = build(layout, 2)
        before = {n: p for n, p in model.state_dict().items()}
        snap = {n: (v.local_shards()[0].tensor.numpy().copy() if isinstance(v, ShardedTensor)
                    and v.local_shards() else None if isinstance(v, ShardedTensor)
                    else v.numpy().copy()) for n, v in before.items()}
        msd, osd = get_state_dict(model, opt)
        # the lr=0 step created Adam's state and moved nothing
        for n, v in msd.items():
            if snap[n] is not None:
                got = v.local_shards()[0].tensor.numpy() if isinstance(v, ShardedTensor) \
                    else v.numpy()
                np.testing.assert_array_equal(got, snap[n], err_msg=n)
        self.assertEqual(sorted(osd["state"]), sorted(n for n, _ in model.named_parameters()))
        c = osd["state"]["c.weight"]
        self.assertEqual(sorted(c), ["exp_avg", "exp_avg_sq", "step"])
        self.assertIsInstance(c["exp_avg"], ShardedTensor)
        self.assertEqual(len(c["exp_avg"].local_shards()), 4 if self.rank == 0 else 0)
        self.assertEqual(float(c["step"]), 1.0)  # rank 1 learnt it from rank 0
        self.assertEqual(sorted(osd["param_groups"][0]["params"]),
                         sorted(n for n, _ in model.named_parameters()))

    @with_comms(backend="gloo")
    def test_full_tensors_and_errors(self):
        model, opt = build({"a": lambda s, w: chunk(1, w), "b": None, "c": None}, 2)
        full = {k: so.from_numpy(v) for k, v in full_values(5).items()}
        set_model_state_dict(model, full)
        (shard,) = model.a.weight.local_shards()
        o = shard.metadata.shard_offsets
        n = shard.metadata.shard_sizes
        np.testing.assert_array_equal(
            shard.tensor.detach().numpy(),
            full_values(5)["a.weight"][o[0]:o[0] + n[0], o[1]:o[1] + n[1]])
        # a ShardedTensor with another layout is refused (resharding is load's job)
        other, _ = build({"a": lambda s, w: chunk(0, w), "b": None, "c": None}, 2)
        msd, osd = get_state_dict(model, opt)
        msd = dict(msd, **{"a.weight": other.a.weight})
        with self.assertRaisesRegex(ValueError, "'a.weight' is sharded differently"):
            set_state_dict(model, opt, model_state_dict=msd, optim_state_dict=osd)
        bad = {k: v for k, v in full.items() if k != "b.bias"}
        with self.assertRaisesRegex(RuntimeError, 'Missing key\\(s\\) in state_dict: "b.bias"'):
            set_model_state_dict(model, bad)
        self.assertEqual(SHAPES["a"], tuple(model.a.weight.size()))
