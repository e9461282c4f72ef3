"""Shared pieces of the checkpoint tests: a small net whose weights are sharded by row,
by column and by an enumerable (block) spec, a deterministic "training" step, and the
4-rank saver that writes the checkpoint and the reference values the loaders compare with.

The training step needs no communication: the loss is 0.5 * ||W - T||^2 per parameter with
a fixed target T, so each rank's gradient is (W - T) on its own shards and Adam's update is
elementwise -- the same bits whatever the sharding.  That makes "resume on M ranks equals
the uninterrupted 4-rank run" an exact comparison.
"""
import os

import numpy as np

import shardopt as so
import shardopt.distributed as dist
from shardopt import nn, optim
from shardopt.distributed.checkpoint import load, save
from shardopt.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from shardopt.sharded_optim import ShardedOptimizer, named_params_with_sharded_tensor
from shardopt.sharded_tensor import Shard, ShardedTensor
from shardopt.sharded_tensor.metadata import ShardedTensorMetadata, TensorProperties
from shardopt.sharding_spec import ChunkShardingSpec, EnumerableShardingSpec, ShardMetadata
from shardopt.testing import MultiProcessTestCase, with_comms

SHAPES = {"a": (13, 16), "b": (10, 13), "c": (6, 10)}  # Linear(16,13), (13,10), (10,6)
STEPS = 3
LR = 0.05
DIR_ENV = "SHARDOPT_CKPT_TEST_DIR"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 13)
        self.b = nn.Linear(13, 10)
        self.c = nn.Linear(10, 6)


def full_values(seed):
    rs = np.random.RandomState(seed)
    out = {}
    for name, shape in SHAPES.items():
        out[f"{name}.weight"] = rs.standard_normal(shape).astype(np.float32)
        out[f"{name}.bias"] = rs.standard_normal(shape[:1]).astype(np.float32)
    return out


TARGET = full_values(1234)


def chunk(dim, world, reverse=False):
    ranks = list(range(world))[::-1] if reverse else list(range(world))
    return ChunkShardingSpec(dim=dim, placements=[f"rank:{r}/cpu" for r in ranks])


def blocks(shape, world):
    """An enumerable spec: a 2x2 grid of uneven blocks, dealt to the ranks in turn."""
    r, c = shape
    rs, cs = [(0, r // 3), (r // 3, r - r // 3)], [(0, c - 3), (c - 3, 3)]
    mds, i = [], 0
    for ro, rn in rs:
        for co, cn in cs:
            mds.append(ShardMetadata([ro, co], [rn, cn], f"rank:{(i * 3 + 1) % world}/cpu"))
            i += 1
    return EnumerableShardingSpec(mds)


def make_sharded(full, spec):
    """A ShardedTensor with `spec`, its local shards cut from the numpy array `full`."""
    md = spec.build_metadata(so.Size(full.shape), TensorProperties(dtype=so.float32,
                                                                   requires_grad=True))
    rank = dist.get_rank()
    shards = []
    for smd in md.shards_metadata:
        if smd.placement.rank() != rank:
            continue
        sl = tuple(slice(o, o + n) for o, n in zip(smd.shard_offsets, smd.shard_sizes))
        t = so.from_numpy(np.ascontiguousarray(full[sl])).requires_grad_(True)
        shards.append(Shard(t, smd))
    return ShardedTensor._init_from_local_shards_and_global_metadata(shards, md)


def build(layout, world, seed=0):
    """(model, optimizer) with the given layout: a dict weight-name -> spec (None: plain)."""
    model = Net()
    vals = full_values(seed)
    with so.no_grad():
        for name, p in model.named_parameters():
            p.copy_(so.from_numpy(vals[name]))
    for mod, spec in layout.items():
        if spec is None:
            continue
        st = make_sharded(vals[f"{mod}.weight"], spec(SHAPES[mod], world))
        m = getattr(model, mod)
        del m._parameters["weight"]
        m.register_parameter("weight", nn.Parameter(st))
    if any(spec is not None for spec in layout.values()):
        opt = ShardedOptimizer(dict(named_params_with_sharded_tensor(model)), optim.Adam, lr=LR)
    else:
        opt = optim.Adam(model.parameters(), lr=LR)
    return model, opt


SAVE_LAYOUT = {"a": lambda s, w: chunk(0, w), "b": lambda s, w: chunk(1, w), "c": blocks}
LAYOUTS = {
    "same": SAVE_LAYOUT,
    "swapped": {"a": lambda s, w: chunk(1, w, reverse=True), "b": lambda s, w: chunk(0, w),
                "c": lambda s, w: chunk(0, w, reverse=True)},
    "enumerable": {"a": blocks, "b": blocks, "c": lambda s, w: chunk(1, w)},
    "replicated": {"a": None, "b": None, "c": None},
}


def local_pieces(value):
    """[(slices into the full tensor, numpy array)] of a Tensor or ShardedTensor."""
    if isinstance(value, ShardedTensor):
        return [(tuple(slice(o, o + n) for o, n in zip(s.metadata.shard_offsets,
                                                        s.metadata.shard_sizes)),
                 s.tensor.detach().numpy()) for s in value.local_shards()]
    return [((), value.detach().numpy())]


def train(model, opt, steps):
    """`steps` Adam steps of the 0.5*||W - T||^2 loss, on whatever shards this rank holds."""
    for _ in range(steps):
        opt.zero_grad()
        for name, p in named_params_with_sharded_tensor(model):
            if isinstance(p, ShardedTensor):
                for s in p.local_shards():
                    sl = tuple(slice(o, o + n) for o, n in zip(s.metadata.shard_offsets,
                                                               s.metadata.shard_sizes))
                    s.tensor.grad = so.from_numpy(s.tensor.detach().numpy() - TARGET[name][sl])
            else:
                p.grad = so.from_numpy(p.detach().numpy() - TARGET[name])
        opt.step()


def gather_full(value):
    """The full numpy array of a Tensor / ShardedTensor on rank 0 (None elsewhere)."""
    if not isinstance(value, ShardedTensor):
        return value.detach().numpy().copy()
    full = so.empty(tuple(value.size()), dtype=value.dtype) if dist.get_rank() == 0 else None
    value.gather(dst=0, out=full)
    return full.numpy().copy() if dist.get_rank() == 0 else None


def flat_state(model_sd, optim_sd):
    """{flat key: Tensor | ShardedTensor} of the two state dicts (what the checkpoint holds)."""
    out = {f"model.{k}": v for k, v in model_sd.items()}
    for fqn, entry in optim_sd["state"].items():
        for k, v in entry.items():
            out[f"optim.state.{fqn}.{k}"] = v
    return out


class Saver(MultiProcessTestCase):
    """Run by the loaders' fixture, not collected as a test: train 4 ranks STEPS steps,
    save, write the saved values (reference.npz), train STEPS more and write final.npz."""

    __test__ = False

    @with_comms(backend="gloo")
    def test_save(self):
        d = os.environ[DIR_ENV]
        model, opt = build(SAVE_LAYOUT, self.world_size)
        train(model, opt, STEPS)
        msd, osd = get_state_dict(model, opt)
        save({"model": msd, "optim": osd}, checkpoint_id=os.path.join(d, "ckpt"))
        ref = {k: gather_full(v) for k, v in flat_state(msd, osd).items()}
        train(model, opt, STEPS)
        fin = {k: gather_full(v) for k, v in flat_state(*get_state_dict(model, opt)).items()}
        if self.rank == 0:
            np.savez(os.path.join(d, "reference.npz"), **ref)
            np.savez(os.path.join(d, "final.npz"), **fin)


def run_saver(directory):
    os.environ[DIR_ENV] = directory
    case = Saver("test_save")
    case.test_save()  # the harness spawns the 4 ranks and joins them
