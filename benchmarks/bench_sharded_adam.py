"""bench_sharded_adam.py — ShardedOptimizer(Adam).step() against torch's fastest CPU Adam,
interleaved in the same rank processes.

Scenario (bench_sharded.py's): 8 float32 tensors of (rows, 1024), row-sharded with
ChunkShardingSpec(dim=0) over W Gloo ranks on this machine, every local shard with a
gradient.  Each rank process builds the scenario twice, once in shardopt and once in torch
(its own Gloo group on another port), and runs, repetition after repetition and in a
rotating order:
  shardopt       ShardedOptimizer(named, shardopt.optim.Adam).step()
  torch-fused    torch's ShardedOptimizer(named, torch.optim.Adam, fused=True).step()
  torch-foreach  the same with foreach=True
  add_           shardopt a.add_(b) over the rank's element count (12 B/element): the
                 in-place-add bandwidth the optimizer's 28 B/element are compared with
so load that comes and goes on a shared machine hits every implementation alike (separate
runs, as bench_sharded.py does them, moved the ratio by 2x here).  A repetition lasts from
the first rank's start to the last rank's end (a barrier before each), up to 10 steps per
repetition at small sizes.  Reported per size and world: each implementation's median and
best ms/step, torch fastest = the faster median of fused and foreach, speed-up = torch
fastest's median / shardopt's median, and shardopt's traffic (28 B/element per rank at its
median) over add_'s bandwidth at its median.  One thread per rank for both libraries.

Usage: python benchmarks/bench_sharded_adam.py [--sizes 8M,32M,128M] [--world 1,2,4]
       [--repeat 9] [--out benchmarks/results/bench_sharded_adam.json]
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _ranks import free_port, rank_error, run_ranks  # noqa: E402
from bench_sharded import COLS, NTENSORS, parse_size  # noqa: E402

IMPLS = ["shardopt", "torch-fused", "torch-foreach", "add_"]
BYTES = {"shardopt": 28, "torch-fused": 28, "torch-foreach": 28, "add_": 12}
LR = 1e-3


def _build(T, sharded_tensor, spec, rows, rank):
    T.manual_seed(rank)
    named, local = {}, 0
    for i in range(NTENSORS):
        st = sharded_tensor.rand(spec, rows, COLS, requires_grad=True)
        for shard in st.local_shards():
            shard.tensor.grad = T.rand(*shard.tensor.shape) * 1e-2
            local += shard.tensor.numel()
        named[f"w{i}"] = st
    return named, local


def _rank_main(rank, world, ports, total, repeat, queue):
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = "1"
    try:
        import warnings
        sys.path.insert(0, ROOT)
        import shardopt as so
        import shardopt.distributed as sdist
        from shardopt import sharded_tensor as s_st
        from shardopt.sharded_optim import ShardedOptimizer as SOpt
        from shardopt.sharding_spec import ChunkShardingSpec as SSpec
        import torch
        import torch.distributed as tdist
        from torch.distributed._shard import sharded_tensor as t_st
        from torch.distributed._shard.sharded_optim import ShardedOptimizer as TOpt
        from torch.distributed._shard.sharding_spec import ChunkShardingSpec as TSpec
        warnings.filterwarnings("ignore")
        torch.set_num_threads(1)
        def placements():  # each spec turns its list's strings into its own device type
            return [f"rank:{r}/cpu" for r in range(world)]
        sdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{ports[0]}", rank=rank,
                                 world_size=world)
        tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{ports[1]}", rank=rank,
                                 world_size=world)
        rows = total // NTENSORS // COLS
        s_named, local = _build(so, s_st, SSpec(dim=0, placements=placements()), rows, rank)
        t_named, _ = _build(torch, t_st, TSpec(dim=0, placements=placements()), rows, rank)
        # two torch optimizers over the same parameters: each keeps its own state, and the
        # parameters' values do not matter to the timing
        steps = {
            "shardopt": (SOpt(s_named, so.optim.Adam, lr=LR).step, sdist.barrier),
            "torch-fused": (TOpt(t_named, torch.optim.Adam, lr=LR, fused=True).step,
                            tdist.barrier),
            "torch-foreach": (TOpt(t_named, torch.optim.Adam, lr=LR, foreach=True).step,
                              tdist.barrier),
        }
        a, b = so.ones(local), so.ones(local)
        steps["add_"] = (lambda: a.add_(b), sdist.barrier)
        for fn, _ in steps.values():  # warm-up: lazy state, page faults
            fn()
            fn()
        inner = max(1, min(10, (16 << 20) // max(1, local)))
        spans = {k: [] for k in IMPLS}
        for r in range(repeat):
            order = IMPLS[r % len(IMPLS):] + IMPLS[:r % len(IMPLS)]
            for k in order:
                fn, barrier = steps[k]
                barrier()
                t0 = time.perf_counter()
                for _ in range(inner):
                    fn()
                spans[k].append((t0, time.perf_counter()))
        sdist.barrier()
        tdist.barrier()
        sdist.destroy_process_group()
        tdist.destroy_process_group()
        queue.put((rank, {"spans": spans, "inner": inner, "local": local}))
    except BaseException as e:  # report, never hang the parent
        queue.put((rank, rank_error(e)))


def run_config(world, total, repeat):
    ports = (free_port(), free_port())
    results = run_ranks(_rank_main, world, lambda r, q: (r, world, ports, total, repeat, q),
                        f"W={world} {total}", timeout=900)
    inner = results[0]["inner"]
    local = max(results[r]["local"] for r in range(world))  # the largest shard sets the pace
    out = {}
    for k in IMPLS:
        per_rep = [(max(results[r]["spans"][k][i][1] for r in range(world)) -
                    min(results[r]["spans"][k][i][0] for r in range(world))) / inner
                   for i in range(repeat)]
        med = statistics.median(per_rep)
        out[k] = {"ms_median": med * 1e3, "ms_best": min(per_rep) * 1e3,
                  "ms_max": max(per_rep) * 1e3,
                  "gb_s_per_rank_median": local * BYTES[k] / med / 1e9}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="8M,32M,128M")
    ap.add_argument("--world", default="1,2,4")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_sharded_adam.json"))
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("bench_sharded_adam.py compares with torch: pip install torch==2.13.0")

    hdr = (f"{'numel':>6}{'W':>3}  {'shardopt ms':>16}  {'torch fused ms':>16}  "
           f"{'torch foreach ms':>16}  {'vs fastest':>10}  {'GB/s/rank':>9}  {'x add_':>6}")
    print(hdr + "\n" + "-" * len(hdr) + "\n  (median (best); GB/s/rank and x add_ at the median)")
    rows = []
    for size in args.sizes.split(","):
        total = parse_size(size)
        for world in [int(w) for w in args.world.split(",")]:
            res = run_config(world, total, args.repeat)
            s, f, fe, add = (res[k] for k in IMPLS)
            fastest = "torch-fused" if f["ms_median"] <= fe["ms_median"] else "torch-foreach"
            speedup = res[fastest]["ms_median"] / s["ms_median"]
            x_add = s["gb_s_per_rank_median"] / add["gb_s_per_rank_median"]
            rows.append({"numel": total, "world": world, "impls": res, "torch_fastest": fastest,
                         "speedup_vs_torch_fastest": speedup, "traffic_vs_inplace_add": x_add})

            def cell(d):
                return f"{d['ms_median']:.2f} ({d['ms_best']:.2f})"
            print(f"{size:>6}{world:>3}  {cell(s):>16}  {cell(f):>16}  {cell(fe):>16}  "
                  f"{speedup:>9.2f}x  {s['gb_s_per_rank_median']:>9.1f}  {x_add:>6.2f}",
                  flush=True)
    out = {
        "benchmark": "bench_sharded_adam",
        "description": "ShardedOptimizer(Adam).step() on 8 row-sharded float32 tensors "
                       "(rows x 1024), shardopt and torch interleaved in the same Gloo rank "
                       "processes; per repetition last rank end - first rank start",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "loadavg_at_end": os.getloadavg()},
        "torch_version": torch.__version__, "repeat": args.repeat, "results": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"wrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
