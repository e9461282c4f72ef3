"""A character-level language model trained on 4 ranks with its large weights sharded.

    python -m shardopt.run --nproc-per-node 4 examples/train_lm.py [--steps 600] [--resume]
    python examples/train_lm.py            (launches itself through shardopt.run)

Data: ``examples/data/shard_tales.txt`` (about 200 KB of short tales written for this
example; ``examples/data/make_corpus.py`` regenerates it). The last 10% is held out.

Model (written the way a torch user would; ``import shardopt as torch`` is all it needs):

  ctx (B, K) chars -> Embedding(V, E) -> flatten (B, K*E) -> LayerNorm -> Dropout
    -> fc1 (K*E -> H), GELU   fc1.weight row-sharded (dim 0): rank r holds hidden units
    -> fc2 (H -> D)           fc2.weight column-sharded (dim 1), the same units
    -> LayerNorm -> Dropout -> head (D -> V) -> cross-entropy with the next character

``fc1``/``fc2`` hold most of the weights and are sharded with ``shard_parameter`` over all
ranks; the model calls them as plain ``nn.Linear`` modules and shardopt's sharded linear does
the collectives (and their backward). Every rank sees the same batch; dropout runs only on replicated activations and is seeded per step, so the ranks agree
and a resumed run repeats an uninterrupted one exactly.

Training: ``ShardedOptimizer`` over AdamW, a linear warm-up then cosine decay
(``lr_scheduler.SequentialLR(LinearLR, CosineAnnealingLR)``), gradient clipping by the true
global norm (``clip_grad_norm_(..., process_group=...)``: the sharded weights' local sums of
squares are all-reduced), and a checkpoint every ``--ckpt-every`` steps: each rank writes
``step-N/rank{r}.pt`` with ``shardopt.save`` (atomic), a barrier confirms all of them, then
rank 0 points ``latest`` at it (atomically). ``--resume`` continues from ``latest``. It
prints loss, learning rate and tokens/s, evaluates on the held-out text, samples a line,
and exits non-zero if the held-out loss did not fall well below the uniform guess.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import shardopt as torch
import shardopt.distributed as dist
from shardopt import nn
from shardopt.nn import functional as F
from shardopt.optim import lr_scheduler
from shardopt.sharded_optim import ShardedOptimizer, named_params_with_sharded_tensor
from shardopt.sharding_spec import ChunkShardingSpec

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "shard_tales.txt")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=DATA)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--context", type=int, default=16, help="characters of context K")
    p.add_argument("--embed", type=int, default=24, help="embedding width E")
    p.add_argument("--hidden", type=int, default=1024, help="fc1 width H (sharded)")
    p.add_argument("--model-dim", type=int, default=128, help="fc2 width D")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ckpt-dir", default=None, help="checkpoint directory (default: temp dir)")
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--resume", action="store_true", help="continue from <ckpt-dir>/latest")
    p.add_argument("--stop-at", type=int, default=None,
                   help="stop after this step (to show --resume); the schedule still spans --steps")
    p.add_argument("--min-improvement", type=float, default=0.5,
                   help="fail unless held-out loss < ln(V) * (1 - this)")
    p.add_argument("--nproc", type=int, default=4, help="ranks when launching itself")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- data


class Corpus:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        ids = np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))
        cut = int(len(ids) * 0.9)
        self.train, self.val = ids[:cut], ids[cut:]

    def batch(self, split, k, size, seed):
        """(ctx (size, k), target (size,)) at positions drawn from `seed`: the same on
        every rank."""
        ids = self.train if split == "train" else self.val
        pos = np.random.RandomState(seed).randint(0, len(ids) - k - 1, size=size)
        ctx = ids[pos[:, None] + np.arange(k)[None, :]]
        return torch.from_numpy(ctx), torch.from_numpy(ids[pos + k].copy())

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


# ----------------------------------------------------------------------------- model


class CharLM(nn.Module):
    def __init__(self, vocab, k, e, h, d, p):
        super().__init__()
        self.embed = nn.Embedding(vocab, e)
        self.norm_in = nn.LayerNorm(k * e)
        self.fc1 = nn.Linear(k * e, h)
        self.fc2 = nn.Linear(h, d)
        self.norm_out = nn.LayerNorm(d)
        self.drop = nn.Dropout(p)
        self.head = nn.Linear(d, vocab)

    def forward(self, ctx):
        x = self.drop(self.norm_in(self.embed(ctx).flatten(1)))
        # fc1/fc2 hold ShardedTensor weights: nn.Linear dispatches to the sharded linear
        # (row-sharded fc1: local matmul + all_gather; column-sharded fc2: local matmul on
        # this rank's columns + all_reduce), whose backward reaches the local shards.
        z = self.fc2(F.gelu(self.fc1(x)))
        return self.head(self.drop(self.norm_out(z)))


def shard_model(model, world):
    placements = [f"rank:{r}/cpu" for r in range(world)]
    torch.shard_parameter(model.fc1, "weight", ChunkShardingSpec(dim=0, placements=placements))
    torch.shard_parameter(model.fc2, "weight", ChunkShardingSpec(dim=1, placements=placements))


def build(args, vocab, world):
    torch.manual_seed(args.seed)
    model = CharLM(vocab, args.context, args.embed, args.hidden, args.model_dim, args.dropout)
    shard_model(model, world)
    opt = ShardedOptimizer(dict(named_params_with_sharded_tensor(model)), torch.optim.AdamW,
                           lr=args.lr, weight_decay=args.weight_decay)
    warm = lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=args.warmup)
    cos = lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, args.steps - args.warmup),
                                         eta_min=args.lr * 0.05)
    sched = lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[args.warmup])
    return model, opt, sched


# ----------------------------------------------------------------------------- checkpoints


def _atomic_text(path, text):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-latest-", dir=d)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(ckpt_dir, step, model, opt, sched, rank):
    step_dir = os.path.join(ckpt_dir, f"step-{step}")
    os.makedirs(step_dir, exist_ok=True)
    torch.save({"step": step, "model": model.state_dict(), "optim": opt.state_dict(),
                "sched": sched.state_dict()}, os.path.join(step_dir, f"rank{rank}.pt"))
    dist.barrier()  # every rank's file is on disk before `latest` may point at it
    if rank == 0:
        _atomic_text(os.path.join(ckpt_dir, "latest"), f"step-{step}\n")
        # keep the new checkpoint and the one before it; older ones are no longer needed
        import shutil
        steps = sorted(int(n[5:]) for n in os.listdir(ckpt_dir)
                       if n.startswith("step-") and n[5:].isdigit())
        for old in steps[:-2]:
            shutil.rmtree(os.path.join(ckpt_dir, f"step-{old}"), ignore_errors=True)
    dist.barrier()


def load_checkpoint(ckpt_dir, model, opt, sched, rank):
    with open(os.path.join(ckpt_dir, "latest")) as f:
        name = f.read().strip()
    ck = torch.load(os.path.join(ckpt_dir, name, f"rank{rank}.pt"))
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optim"])
    sched.load_state_dict(ck["sched"])
    return ck["step"]


# ----------------------------------------------------------------------------- training


def evaluate(model, corpus, args, batches=8):
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(batches):
            ctx, tgt = corpus.batch("val", args.context, 256, seed=10_000_000 + i)
            total += F.cross_entropy(model(ctx), tgt).item()
    model.train()
    return total / batches


def sample(model, corpus, args, prompt="Tale 7. ", n=120):
    model.eval()
    pad = corpus.index["\n"]  # the context before the prompt: blank lines, as between tales
    ids = [pad] * args.context + [corpus.index[c] for c in prompt]
    torch.manual_seed(args.seed + 99)
    with torch.no_grad():
        for _ in range(n):
            ctx = torch.tensor([ids[-args.context:]], dtype=torch.int64)
            probs = F.softmax(model(ctx)[0] / 0.8, dim=-1)
            ids.append(int(torch.multinomial(probs, 1).item()))
    model.train()
    return corpus.decode(ids[args.context:])


def main(args):
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo")
    corpus = Corpus(args.data)
    vocab = len(corpus.chars)
    model, opt, sched = build(args, vocab, world)
    params = [p for _, p in named_params_with_sharded_tensor(model)]
    n_params = sum(math.prod(p.size()) for p in params)
    if rank == 0:
        print(f"train_lm: {world} ranks, {vocab} characters, {n_params:,} parameters "
              f"(fc1 row-sharded, fc2 column-sharded), {args.steps} steps", flush=True)

    ckpt_dir = args.ckpt_dir
    tmp_dir = None
    if ckpt_dir is None:
        obj = [tempfile.mkdtemp(prefix="train_lm-") if rank == 0 else None]
        dist.broadcast_object_list(obj, src=0)
        ckpt_dir = tmp_dir = obj[0]
    os.makedirs(ckpt_dir, exist_ok=True)

    start = 0
    if args.resume:
        start = load_checkpoint(ckpt_dir, model, opt, sched, rank)
        if rank == 0:
            print(f"resumed from step {start} ({ckpt_dir})", flush=True)

    stop = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    group = dist.group.WORLD
    t0, tokens, loss_v = time.time(), 0, float("nan")
    for step in range(start, stop):
        torch.manual_seed(args.seed * 1_000_003 + step)  # dropout masks depend on the step only
        ctx, tgt = corpus.batch("train", args.context, args.batch, seed=args.seed * 7919 + step)
        opt.zero_grad()
        loss = F.cross_entropy(model(ctx), tgt)
        loss.backward()
        nn.utils.clip_grad_norm_(params, args.clip, process_group=group)
        opt.step()
        sched.step()
        tokens += args.batch
        loss_v = loss.item()
        done = step + 1
        if rank == 0 and (done % args.log_every == 0 or done == stop):
            dt = time.time() - t0
            print(f"step {done:5d}  loss {loss_v:.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                  f"{tokens / dt:,.0f} tokens/s", flush=True)
        if done % args.ckpt_every == 0 or done == stop:
            save_checkpoint(ckpt_dir, done, model, opt, sched, rank)

    ok = True
    if stop == args.steps:
        val = evaluate(model, corpus, args)
        uniform = math.log(vocab)
        ok = val < uniform * (1 - args.min_improvement)
        text = sample(model, corpus, args)
        if rank == 0:
            print(f"held-out loss {val:.4f} (uniform guess {uniform:.4f}): "
                  f"{'OK' if ok else 'NOT LEARNING'}", flush=True)
            print(f"sample: {text!r}", flush=True)
    dist.barrier()
    if tmp_dir is not None and rank == 0:
        import shutil
        shutil.rmtree(tmp_dir, ignore_errors=True)
    dist.destroy_process_group()
    return 0 if ok else 1


def _launch_self(args):
    cmd = [sys.executable, "-m", "shardopt.run", "--standalone", "--nproc-per-node",
           str(args.nproc), os.path.abspath(__file__)] + sys.argv[1:]
    return subprocess.call(cmd)


if __name__ == "__main__":
    a = parse_args()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        sys.exit(_launch_self(a))
    sys.exit(main(a))
