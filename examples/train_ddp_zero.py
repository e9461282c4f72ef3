"""Data-parallel training with ZeRO-2: optimizer state and gradients partitioned over ranks.

    python -m shardopt.run --nproc-per-node 4 examples/train_ddp_zero.py [--steps 100]
    python examples/train_ddp_zero.py            (launches itself through shardopt.run)

Model: x (B, d_in) -> Linear -> GELU -> Linear -> GELU -> Linear -> y (B, d_out), MSE loss
against a fixed random "teacher" function; every rank holds the whole model.  Each step has
one global batch of ``--batch`` rows per rank, derived from (seed, step); rank r trains on
rows [r*batch, (r+1)*batch).

Optimizer: ``ZeroRedundancyOptimizer(model.parameters(), AdamW, zero_stage=2)``, no
DistributedDataParallel: the optimizer hooks every parameter, reduce-scatters each bucket
of gradients (averaged) into the rank that owns that contiguous range as soon as backward
has produced it, updates only the owned ranges with the fused AdamW kernel, and all-gathers
the parameters after ``step()``.  Each rank holds 1/W of AdamW's state (printed).

Halfway the optimizer state is consolidated on rank 0 (``consolidate_state_dict``), saved,
and loaded into a fresh optimizer (it re-partitions the global state dict).  At the end rank
0 trains the same model single-process on the concatenated batches with a plain AdamW and
compares every parameter (float32 tolerance); the exit status is non-zero on a mismatch.
CPU/Gloo by default; CUDA/NCCL when every rank has its own GPU.
"""
import argparse
import os
import pickle
import subprocess
import sys
import time

import numpy as np

import shardopt as so
import shardopt.distributed as dist
from shardopt import nn, optim
from shardopt.distributed.optim import ZeroRedundancyOptimizer

# Data-parallel and single-process runs average the gradient in a different order
# (per-rank means, then the reduce-scatter's sum / W), so they agree to float32 rounding;
# Adam's division by sqrt(v) can magnify that where a gradient is near 0.
RTOL, ATOL = 1e-4, 1e-5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=16, help="rows per rank per step")
    p.add_argument("--d-in", type=int, default=64)
    p.add_argument("--hidden", type=int, default=250)
    p.add_argument("--d-out", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--bucket-cap-mb", type=float, default=0.05,
                   help="ZeRO-2 bucket size (small by default: several buckets overlap)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--nproc", type=int, default=4, help="ranks when launching itself")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    return p.parse_args(argv)


def build_model(args, device):
    so.manual_seed(args.seed)
    return nn.Sequential(nn.Linear(args.d_in, args.hidden), nn.GELU(),
                         nn.Linear(args.hidden, args.hidden), nn.GELU(),
                         nn.Linear(args.hidden, args.d_out)).to(device)


def global_batch(args, step, world):
    rs = np.random.RandomState(args.seed * 7919 + step)
    x = rs.standard_normal((args.batch * world, args.d_in)).astype(np.float32)
    teacher = np.random.RandomState(12345).standard_normal((args.d_in, args.d_out))
    y = np.tanh(x @ teacher.astype(np.float32) / np.sqrt(args.d_in)).astype(np.float32)
    return x, y


def train_steps(model, opt, args, device, start, stop, world, rank, log):
    for step in range(start, stop):
        x, y = global_batch(args, step, world)
        if rank is not None:
            x = x[rank * args.batch:(rank + 1) * args.batch]
            y = y[rank * args.batch:(rank + 1) * args.batch]
        x = so.from_numpy(np.ascontiguousarray(x)).to(device)
        y = so.from_numpy(np.ascontiguousarray(y)).to(device)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        if log and (step % args.log_every == 0 or step == stop - 1):
            print(f"step {step:4d}  loss {loss.item():.6f}", flush=True)


def make_optimizer(model, args):
    return ZeroRedundancyOptimizer(model.parameters(), optim.AdamW, lr=args.lr,
                                   weight_decay=1e-2, zero_stage=2,
                                   bucket_cap_mb=args.bucket_cap_mb)


def main(args):
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    enough_gpus = so.cuda.is_available() and so.cuda.device_count() >= int(
        os.environ.get("LOCAL_WORLD_SIZE", world))
    if args.device == "cuda" and not enough_gpus:
        raise SystemExit(f"--device cuda needs one GPU per rank ({world})")
    use_cuda = enough_gpus and args.device != "cpu"
    backend = "nccl" if use_cuda else "gloo"
    device = f"cuda:{local_rank}" if use_cuda else "cpu"
    if use_cuda:
        so.cuda.set_device(local_rank)
    dist.init_process_group(backend)
    if rank == 0:
        print(f"train_ddp_zero: {world} ranks, backend {backend}, device {device}, "
              f"{args.steps} steps, ZeRO-2 AdamW, hidden {args.hidden}", flush=True)

    t0 = time.time()
    model = build_model(args, device)
    init = {n: p.detach().cpu().numpy().copy() for n, p in model.named_parameters()}
    opt = make_optimizer(model, args)
    half = args.steps // 2
    train_steps(model, opt, args, device, 0, half, world, rank, rank == 0)

    # optimizer-state bytes: each rank holds ~1/W of AdamW's (exp_avg + exp_avg_sq)
    per_rank = [None] * world
    dist.all_gather_object(per_rank, opt.state_bytes())
    numel = sum(p.numel() for p in model.parameters())
    if rank == 0:
        print(f"optimizer state bytes per rank: {per_rank} (single process: "
              f"{numel * 8} + steps; 1/{world} = {numel * 8 / world:.0f})", flush=True)

    # checkpoint: the global state on rank 0, loaded into a fresh optimizer everywhere
    opt.consolidate_state_dict(to=0)
    blob = [pickle.dumps(opt.state_dict()) if rank == 0 else None]
    dist.broadcast_object_list(blob, src=0)
    del opt
    opt = make_optimizer(model, args)
    opt.load_state_dict(pickle.loads(blob[0]))
    if rank == 0:
        print(f"checkpoint at step {half}: consolidated on rank 0 "
              f"({len(blob[0])} bytes) and reloaded", flush=True)
    train_steps(model, opt, args, device, half, args.steps, world, rank, rank == 0)
    t_dp = time.time() - t0

    ok = True
    if rank == 0:
        ref = build_model(args, device)
        with so.no_grad():
            for n, p in ref.named_parameters():
                p.copy_(so.from_numpy(init[n]).to(device))
        ref_opt = optim.AdamW(ref.parameters(), lr=args.lr, weight_decay=1e-2)
        train_steps(ref, ref_opt, args, device, 0, args.steps, world, None, False)
        worst = 0.0
        got = dict(model.named_parameters())
        for name, p in ref.named_parameters():
            want = p.detach().cpu().numpy()
            have = got[name].detach().cpu().numpy()
            worst = max(worst, float(np.max(np.abs(have - want) / (ATOL + RTOL * np.abs(want)),
                                            initial=0.0)))
            if not np.allclose(have, want, rtol=RTOL, atol=ATOL):
                ok = False
                print(f"MISMATCH {name}: max |diff| {np.max(np.abs(have - want)):.3e}",
                      flush=True)
        print(f"data-parallel run {t_dp:.1f}s; parameters vs single-process run on the "
              f"concatenated batch: {'OK' if ok else 'FAILED'} (worst |diff| / (atol + "
              f"rtol*|ref|) = {worst:.3f}, rtol={RTOL}, atol={ATOL})", flush=True)
    verdict = [ok]
    dist.broadcast_object_list(verdict, src=0)
    dist.destroy_process_group()
    return 0 if verdict[0] else 1


def _launch_self(args):
    """Not under a launcher: run this script on --nproc ranks through shardopt.run."""
    cmd = [sys.executable, "-m", "shardopt.run", "--standalone", "--nproc-per-node",
           str(args.nproc), os.path.abspath(__file__)] + sys.argv[1:]
    return subprocess.call(cmd)


if __name__ == "__main__":
    a = parse_args()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        sys.exit(_launch_self(a))
    sys.exit(main(a))
