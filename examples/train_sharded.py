"""Model-parallel training of an MLP whose two large weights are sharded across ranks.

    python -m shardopt.run --nproc-per-node 4 examples/train_sharded.py [--steps 300]
    python examples/train_sharded.py            (launches itself through shardopt.run)

Model: x (B, d_in) -> fc1 -> GELU -> fc2 -> GELU -> head -> y (B, d_out), MSE loss against a
fixed random "teacher" function.  ``fc1.weight`` (hidden x d_in) is sharded row-wise (dim 0)
and ``fc2.weight`` (d_mid x hidden) column-wise (dim 1) with ``shard_parameter``, over the
same placements, so rank r holds hidden units [o_r, o_r + n_r) of both.  The forward is the
unsharded model's own ``model(x)``: ``nn.Linear`` calls ``F.linear``, which dispatches a
ShardedTensor weight to shardopt's sharded linear (the input and the result are the same on
every rank):

  fc1 (rows sharded):    h_r = x @ W1_r.T, then an all_gather of the ranks' h_r -> h, + b1
  fc2 (columns sharded): p_r = h[:, o_r:o_r+n_r] @ W2_r.T, then an all_reduce -> z, + b2

Autograd crosses the collectives (the all_gather's backward keeps this rank's slice of the
gradient; the gradient of fc2's input is summed over the ranks), so each local shard gets
its slice of the unsharded gradient and the replicated params (biases, head) get identical
gradients everywhere.  ``hidden`` defaults to 1022, which does not divide by 4: the shards
are uneven (256, 256, 256, 254 hidden units).

Training: ``ShardedOptimizer(named_params_with_sharded_tensor(model), Adam)``, one fresh
batch per step derived from (seed, step), so every rank sees the same data.  Halfway, the
ranks save one distributed checkpoint (``shardopt.distributed.checkpoint``: model and
optimizer state from ``get_state_dict``, each rank writing its shards, committed
atomically), then the run continues from a freshly built model and optimizer (different
init seed) that load it.  ``--stop-after N --ckpt-dir D`` ends the run after saving at step
N; ``--resume D/ckpt`` starts a run -- on any number of ranks -- from such a checkpoint
(the load reshards the weights and Adam's state to the new world size).  At the end rank 0 gathers the sharded weights and compares every
parameter with an unsharded single-process run of the same model and data; the exit status
is non-zero if they differ beyond float32 tolerance.

CPU/Gloo by default; CUDA/NCCL (``rank:i/cuda:i``) when every rank has its own GPU.
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import shardopt as so
import shardopt.distributed as dist
import shardopt.distributed.checkpoint as dcp
from shardopt import nn, optim
from shardopt.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from shardopt.nn import functional as F
from shardopt.sharded_optim import ShardedOptimizer, named_params_with_sharded_tensor
from shardopt.sharded_tensor import ShardedTensor
from shardopt.sharding_spec import ChunkShardingSpec

# float32 tolerance for sharded vs unsharded parameters after training.  The sharded forward
# sums fc2's partial products in another order (per-rank BLAS blocks + the all-reduce), so
# the gradients agree to float32 rounding (~1e-7 relative) only; Adam divides by sqrt(v), so
# where a gradient hovers near 0 a rounding difference moves the update by a visible
# fraction of lr (3e-3).  Measured over 300 steps: max |diff| ~2.5e-5 on weights of ~0.1,
# while training moves them by ~0.3.  atol = 1e-4 is 1/30 of one step's lr.
RTOL, ATOL = 1e-3, 1e-4


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--d-in", type=int, default=128)
    p.add_argument("--hidden", type=int, default=1022)
    p.add_argument("--d-mid", type=int, default=128)
    p.add_argument("--d-out", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10, help="print the loss every N steps")
    p.add_argument("--ckpt-dir", default=None, help="checkpoint directory (default: a temp dir)")
    p.add_argument("--stop-after", type=int, default=None,
                   help="save the checkpoint <ckpt-dir>/ckpt after this many steps and exit")
    p.add_argument("--resume", default=None,
                   help="a checkpoint (e.g. <ckpt-dir>/ckpt) to resume from, on any world size")
    p.add_argument("--nproc", type=int, default=4, help="ranks when launching itself")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: CUDA/NCCL when every rank has its own GPU, else CPU/Gloo")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- model


class MLP(nn.Module):
    def __init__(self, d_in, hidden, d_mid, d_out):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, d_mid)
        self.head = nn.Linear(d_mid, d_out)

    def forward(self, x):
        """The same code for the sharded model and the unsharded reference."""
        return self.head(F.gelu(self.fc2(F.gelu(self.fc1(x)))))


def build_model(args, seed, device):
    so.manual_seed(seed)
    return MLP(args.d_in, args.hidden, args.d_mid, args.d_out).to(device)


def shard_model(model, placements):
    so.shard_parameter(model.fc1, "weight", ChunkShardingSpec(dim=0, placements=placements))
    so.shard_parameter(model.fc2, "weight", ChunkShardingSpec(dim=1, placements=placements))


def make_optimizer(model, args):
    named = dict(named_params_with_sharded_tensor(model))
    return ShardedOptimizer(named, optim.Adam, lr=args.lr)


# ----------------------------------------------------------------------------- data


def batch(args, step, device):
    """The step's batch: the same on every rank and in the reference run."""
    rs = np.random.RandomState(args.seed * 100003 + 7)
    a = rs.standard_normal((args.d_in, 16)) / math.sqrt(args.d_in)
    b = rs.standard_normal((16, args.d_out)) / 4.0
    rs = np.random.RandomState(args.seed * 100003 + 1000 + step)
    x = rs.standard_normal((args.batch, args.d_in)).astype(np.float32)
    y = (np.tanh(1.5 * x @ a) @ b).astype(np.float32)
    return so.from_numpy(x).to(device), so.from_numpy(y).to(device)


# ----------------------------------------------------------------------------- checkpoint


def _model_state(model):
    """{name: tensor | [local shard tensors]} on the CPU, plus each ShardedTensor's layout."""
    out = {}
    for name, p in named_params_with_sharded_tensor(model):
        if isinstance(p, ShardedTensor):
            out[name] = {
                "local_shards": [s.tensor.detach().cpu().clone() for s in p.local_shards()],
                "offsets": [list(s.metadata.shard_offsets) for s in p.local_shards()],
                "size": tuple(p.size()),
            }
        else:
            out[name] = p.detach().cpu().clone()
    return out


def _load_model_state(model, state):
    with so.no_grad():
        for name, p in named_params_with_sharded_tensor(model):
            saved = state[name]
            if isinstance(p, ShardedTensor):
                offsets = [list(s.metadata.shard_offsets) for s in p.local_shards()]
                if saved["offsets"] != offsets or saved["size"] != tuple(p.size()):
                    raise ValueError(f"checkpoint: {name} was sharded as {saved['offsets']} of "
                                     f"{saved['size']}, the model as {offsets} of {tuple(p.size())}")
                for s, t in zip(p.local_shards(), saved["local_shards"]):
                    s.tensor.copy_(t)
            else:
                p.copy_(saved)


def save_checkpoint(path, step, model, opt):
    """One checkpoint directory for all ranks (a collective): each rank writes its shards."""
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optim": optim_sd, "step": step}, checkpoint_id=path)


def load_checkpoint(path, model, opt):
    """Load `path` -- saved on any number of ranks -- into this run's shards; the step."""
    model_sd, optim_sd = get_state_dict(model, opt)
    state = {"model": model_sd, "optim": optim_sd, "step": 0}
    dcp.load(state, checkpoint_id=path)  # in place: reads only this rank's byte ranges
    set_state_dict(model, opt, model_state_dict=model_sd, optim_state_dict=optim_sd)
    return state["step"]


# ----------------------------------------------------------------------------- training


def train_steps(model, opt, args, device, start, stop, log):
    for step in range(start, stop):
        x, y = batch(args, step, device)
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if log and (step % args.log_every == 0 or step == args.steps - 1):
            print(f"step {step:4d}  loss {loss.item():.6f}", flush=True)


def full_params(model, device):
    """Every parameter as a NumPy array, sharded ones gathered: on rank 0 (None elsewhere)."""
    rank = dist.get_rank()
    out = {}
    for name, p in named_params_with_sharded_tensor(model):
        if isinstance(p, ShardedTensor):
            full = so.empty(tuple(p.size()), dtype=p.dtype, device=device) if rank == 0 else None
            p.gather(dst=0, out=full)
            if rank == 0:
                out[name] = full.cpu().numpy().copy()
        elif rank == 0:
            out[name] = p.detach().cpu().numpy().copy()
    return out if rank == 0 else None


def main(args):
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    enough_gpus = so.cuda.is_available() and so.cuda.device_count() >= int(
        os.environ.get("LOCAL_WORLD_SIZE", world))
    if args.device == "cuda" and not enough_gpus:
        raise SystemExit(f"--device cuda needs one GPU per rank ({world}); "
                         f"{so.cuda.device_count() if so.cuda.is_available() else 0} available")
    use_cuda = enough_gpus and args.device != "cpu"
    backend = "nccl" if use_cuda else "gloo"
    device = f"cuda:{local_rank}" if use_cuda else "cpu"
    if use_cuda:
        so.cuda.set_device(local_rank)
    dist.init_process_group(backend)
    placements = [f"rank:{r}/cuda:{r}" if use_cuda else f"rank:{r}/cpu" for r in range(world)]
    if rank == 0:
        print(f"train_sharded: {world} ranks, backend {backend}, device {device}, "
              f"{args.steps} steps, hidden {args.hidden} (fc1 row-sharded, fc2 column-sharded)",
              flush=True)

    if args.stop_after is not None and args.ckpt_dir is None:
        raise SystemExit("--stop-after needs --ckpt-dir (where the checkpoint stays)")
    ckpt_dir = args.ckpt_dir
    tmp_dir = None
    if ckpt_dir is None:
        # one directory for all ranks: rank 0 creates it, the others learn its name
        obj = [tempfile.mkdtemp(prefix="train_sharded-") if rank == 0 else None]
        dist.broadcast_object_list(obj, src=0)
        ckpt_dir = tmp_dir = obj[0]
    os.makedirs(ckpt_dir, exist_ok=True)
    ckpt = os.path.join(ckpt_dir, "ckpt")

    t0 = time.time()
    model = build_model(args, args.seed, device)
    reference_init = _model_state(model) if rank == 0 else None  # unsharded copy, rank 0
    shard_model(model, placements)
    opt = make_optimizer(model, args)
    half = args.steps // 2 if args.stop_after is None else args.stop_after
    if args.resume is None:
        train_steps(model, opt, args, device, 0, half, rank == 0)
        save_checkpoint(ckpt, half, model, opt)
        if args.stop_after is not None:
            if rank == 0:
                print(f"checkpoint at step {half}: {ckpt} ({world} ranks); stopping", flush=True)
            dist.destroy_process_group()
            return 0
        if rank == 0:
            print(f"checkpoint at step {half}: {ckpt}; reloading into a fresh "
                  "model and optimizer", flush=True)
    del model, opt
    model = build_model(args, args.seed + 1, device)  # another init: the load must matter
    shard_model(model, placements)
    opt = make_optimizer(model, args)
    start = load_checkpoint(ckpt if args.resume is None else args.resume, model, opt)
    if rank == 0 and args.resume is not None:
        print(f"resumed from {args.resume} at step {start} on {world} ranks", flush=True)
    train_steps(model, opt, args, device, start, args.steps, rank == 0)
    t_sharded = time.time() - t0

    got = full_params(model, device)
    ok = True
    if rank == 0:
        ref = build_model(args, args.seed + 2, device)
        _load_model_state(ref, reference_init)
        ref_opt = optim.Adam(ref.parameters(), lr=args.lr)
        train_steps(ref, ref_opt, args, device, 0, args.steps, False)
        worst = moved = 0.0
        for name, p in ref.named_parameters():
            want = p.detach().cpu().numpy()
            moved = max(moved, float(np.max(np.abs(want - reference_init[name].numpy()), initial=0.0)))
            err = np.max(np.abs(got[name] - want) / (ATOL + RTOL * np.abs(want)), initial=0.0)
            worst = max(worst, float(err))
            if not np.allclose(got[name], want, rtol=RTOL, atol=ATOL):
                ok = False
                print(f"MISMATCH {name}: max |diff| {np.max(np.abs(got[name] - want)):.3e}",
                      flush=True)
        print(f"sharded run {t_sharded:.1f}s; parameters vs unsharded single-process run: "
              f"{'OK' if ok else 'FAILED'} (worst |diff| / (atol + rtol*|ref|) = {worst:.3f}, "
              f"rtol={RTOL}, atol={ATOL}; training moved them by up to {moved:.3g})", flush=True)
    verdict = [ok]
    dist.broadcast_object_list(verdict, src=0)
    dist.barrier()
    if tmp_dir is not None and rank == 0:
        shutil.rmtree(tmp_dir)
    dist.destroy_process_group()
    return 0 if verdict[0] else 1


def _launch_self(args):
    """Not under a launcher: run this script on --nproc ranks through shardopt.run."""
    cmd = [sys.executable, "-m", "shardopt.run", "--standalone", "--nproc-per-node", str(args.nproc),
           os.path.abspath(__file__)] + sys.argv[1:]
    return subprocess.call(cmd)


if __name__ == "__main__":
    a = parse_args()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        sys.exit(_launch_self(a))
    sys.exit(main(a))
