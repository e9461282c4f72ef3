"""bench_sharded.py — ShardedOptimizer.step() over row-sharded tensors, shardopt vs torch.

Scenario: 8 float32 tensors of (rows, 1024), row-sharded with ChunkShardingSpec(dim=0) over
W Gloo ranks on this machine, totalling 4M and 32M elements; every local shard has a
gradient; ShardedOptimizer(named_params, Adam | SGD(momentum=0.9)).step() is timed.
For W in {2, 4}: ms/step, GB/s per rank (the bytes the optimizer must move for its local
shards: Adam reads p, g, m, v and writes p, m, v = 28 B/element; SGD-momentum reads p, g,
buf and writes p, buf = 20 B/element), and the optimizer-state bytes a rank holds against
the unsharded total.  When PyTorch is importable the same scenario runs through
torch.distributed._shard.sharded_optim.ShardedOptimizer (torch.optim defaults, Gloo) in
the same run.  Target: shardopt >= 3x faster per step than torch at equal world size.

Timing: every rank runs the step at the same time (a barrier before each repetition; all
ranks share this machine's cores, as in a real run).  A repetition lasts from the first
rank's start to the last rank's end (time.perf_counter is CLOCK_MONOTONIC, common to all
processes), so ranks that share a core are charged for it; small sizes run up to 10 steps
per repetition (time / steps) to keep the barrier's release skew out; the best of --repeat
repetitions is reported (interference only adds time).  GB/s per rank = the rank's bytes /
that time.  Each rank runs one thread (OMP_NUM_THREADS=1, torch.set_num_threads(1)), as
under the launcher.

SGD-momentum note: torch's CPU SGD is two passes (buf = m*buf + g; p -= lr*buf), 24 B per
element against the fused kernel's 20 B, so on a memory-bound step its floor is ~1.2x below
ours, not 3x; the 3x target is met by Adam (torch: ~5 passes per param), see RESULTS.

torch is run twice: with torch.optim's defaults (Adam's CPU default is the one-tensor-at-a-
time loop) and, for Adam, with Adam(fused=True), torch's fastest CPU path.  For shardopt
each rank also measures a.add_(b) over its local element count the same way (12 B/element):
the in-place-add bandwidth the optimizer's traffic is compared with.

Usage: python benchmarks/bench_sharded.py [--sizes 4M,32M] [--world 2,4] [--repeat R]
       [--rounds N] [--no-torch]
Writes benchmarks/results/bench_sharded.json and prints a table.
"""
import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _ranks import free_port, rank_error, run_ranks  # noqa: E402

COLS = 1024
NTENSORS = 8
BYTES = {"adam": 28, "sgd_momentum": 20}
TARGET_SPEEDUP = 3.0


def _state_bytes(state):
    total = 0
    for st in state.values():
        for v in st.values():
            if hasattr(v, "numel") and hasattr(v, "element_size"):
                total += v.numel() * v.element_size()
            elif hasattr(v, "numel") and hasattr(v, "dtype"):
                total += v.numel() * v.dtype.itemsize
    return total


def _rank_main(lib, rank, world, port, total, opt_name, repeat, queue):
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        if lib == "shardopt":
            sys.path.insert(0, ROOT)
            import shardopt as T
            import shardopt.distributed as dist
            from shardopt import sharded_tensor
            from shardopt.sharded_optim import ShardedOptimizer
            from shardopt.sharding_spec import ChunkShardingSpec
            optim = T.optim
        else:  # "torch" (torch.optim defaults) or "torch-fused" (Adam(fused=True))
            import torch as T
            import torch.distributed as dist
            from torch.distributed._shard import sharded_tensor
            from torch.distributed._shard.sharded_optim import ShardedOptimizer
            from torch.distributed._shard.sharding_spec import ChunkShardingSpec
            import warnings
            warnings.filterwarnings("ignore")
            T.set_num_threads(1)
            optim = T.optim
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world)
        spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(world)])
        rows = total // NTENSORS // COLS
        T.manual_seed(rank)
        named = {}
        local_numel = 0
        for i in range(NTENSORS):
            st = sharded_tensor.rand(spec, rows, COLS, requires_grad=True)
            for shard in st.local_shards():
                shard.tensor.grad = T.rand(*shard.tensor.shape) * 1e-2
                local_numel += shard.tensor.numel()
            named[f"w{i}"] = st
        add_spans = []
        if lib == "shardopt":
            # the in-place add bandwidth of this rank's share of the machine, measured the same
            # way (all ranks at once, barrier, best span): a.add_(b) moves 12 B/element
            a, b = T.ones(local_numel), T.ones(local_numel)
            a.add_(b)
            for _ in range(repeat):
                dist.barrier()
                t0 = time.perf_counter()
                a.add_(b)
                add_spans.append((t0, time.perf_counter(), 1))
            del a, b
        if opt_name == "adam" and lib == "torch-fused":
            opt = ShardedOptimizer(named, optim.Adam, lr=1e-3, fused=True)
        elif opt_name == "adam":
            opt = ShardedOptimizer(named, optim.Adam, lr=1e-3)
        else:
            opt = ShardedOptimizer(named, optim.SGD, lr=1e-3, momentum=0.9)
        for _ in range(2):  # warm-up: lazy state creation, page faults
            opt.step()
        # a few steps per repetition for small sizes, so that the barrier's release skew
        # (~0.1-1 ms between ranks) stays small against the measured time
        inner = max(1, min(10, (16 << 20) // max(1, local_numel)))
        spans = []  # (start, end) on CLOCK_MONOTONIC, which every process on the machine shares
        for _ in range(repeat):
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(inner):
                opt.step()
            spans.append((t0, time.perf_counter(), inner))
        state_bytes = _state_bytes(opt.state)
        dist.barrier()
        dist.destroy_process_group()
        queue.put((rank, {"spans": spans, "add_spans": add_spans, "local_numel": local_numel,
                          "state_bytes": state_bytes}))
    except BaseException as e:  # report, never hang the parent
        queue.put((rank, rank_error(e)))


def run_config(lib, world, total, opt_name, repeat):
    port = free_port()
    results = run_ranks(_rank_main, world, lambda r, q: (lib, r, world, port, total, opt_name, repeat, q), f"{lib} W={world} {total} {opt_name}")
    # a repetition lasts from the first rank's start to the last rank's end
    inner = results[0]["spans"][0][2]
    per_rep = [(max(results[r]["spans"][i][1] for r in range(world)) -
                min(results[r]["spans"][i][0] for r in range(world))) / inner
               for i in range(repeat)]
    best = min(per_rep)
    median = sorted(per_rep)[len(per_rep) // 2]
    add_gbs = None
    if results[0]["add_spans"]:
        add_rep = [max(results[r]["add_spans"][i][1] for r in range(world)) -
                   min(results[r]["add_spans"][i][0] for r in range(world)) for i in range(repeat)]
        add_gbs = results[0]["local_numel"] * 12 / min(add_rep) / 1e9
    rank_bytes = [results[r]["local_numel"] * BYTES[opt_name] for r in range(world)]
    rank_gbs = [b / best / 1e9 for b in rank_bytes]
    state = [results[r]["state_bytes"] for r in range(world)]
    return {
        "lib": lib, "world": world, "numel": total, "optimizer": opt_name,
        "ms_per_step": best * 1e3, "ms_per_step_median": median * 1e3,
        "ms_per_step_max": max(per_rep) * 1e3,
        "add_gb_s_per_rank0": add_gbs,
        "gb_s_per_rank_min": min(rank_gbs), "gb_s_per_rank_mean": sum(rank_gbs) / world,
        "state_bytes_per_rank_max": max(state),
        "state_bytes_unsharded": sum(state),
        "state_fraction_per_rank": max(state) / max(1, sum(state)),
    }


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1], 1)
    return int(float(s[:-1] if s[-1] in "KMG" else s) * mult)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="4M,32M")
    ap.add_argument("--world", default="2,4")
    ap.add_argument("--optimizers", default="adam,sgd_momentum")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_sharded.json"))
    args = ap.parse_args()

    libs = ["shardopt"]
    torch_version = None
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            torch_version = torch.__version__
            libs += ["torch", "torch-fused"]
        except ImportError:
            print("PyTorch not importable: shardopt only", file=sys.stderr)

    rows = []
    hdr = (f"{'optimizer':<13}{'numel':>6}{'W':>3}  {'shardopt ms':>11}{'GB/s/rank':>10}"
           f"{'state/rank':>12}{'of total':>9}  {'torch ms':>9}{'GB/s/rank':>10}{'speedup':>8}")
    print(hdr)
    print("-" * len(hdr))
    for opt_name in args.optimizers.split(","):
        for size in args.sizes.split(","):
            total = parse_size(size)
            for world in [int(w) for w in args.world.split(",")]:
                # libraries alternate over --rounds rounds, each keeps its best round: on a
                # shared machine, load that comes and goes then hits both alike
                res = {}
                for _ in range(args.rounds):
                    for lib in libs:
                        if lib == "torch-fused" and opt_name != "adam":
                            continue
                        r = run_config(lib, world, total, opt_name, args.repeat)
                        if lib not in res or r["ms_per_step"] < res[lib]["ms_per_step"]:
                            res[lib] = r
                ours = res["shardopt"]
                row = dict(ours)
                line = (f"{opt_name:<13}{size:>6}{world:>3}  {ours['ms_per_step']:>11.2f}"
                        f"{ours['gb_s_per_rank_min']:>10.2f}"
                        f"{ours['state_bytes_per_rank_max'] / 2**20:>10.1f}Mi"
                        f"{ours['state_fraction_per_rank']:>9.2f}")
                if "torch" in res:
                    t = res["torch"]
                    row["torch_ms_per_step"] = t["ms_per_step"]
                    row["torch_gb_s_per_rank_min"] = t["gb_s_per_rank_min"]
                    row["torch_state_bytes_per_rank_max"] = t["state_bytes_per_rank_max"]
                    row["speedup_vs_torch"] = t["ms_per_step"] / ours["ms_per_step"]
                    row["meets_target"] = row["speedup_vs_torch"] >= TARGET_SPEEDUP
                    line += (f"  {t['ms_per_step']:>9.2f}{t['gb_s_per_rank_min']:>10.2f}"
                             f"{row['speedup_vs_torch']:>7.1f}x")
                if "torch-fused" in res:
                    t = res["torch-fused"]
                    row["torch_fused_ms_per_step"] = t["ms_per_step"]
                    row["torch_fused_ms_per_step_median"] = t["ms_per_step_median"]
                    row["speedup_vs_torch_fused"] = t["ms_per_step"] / ours["ms_per_step"]
                    row["speedup_vs_torch_fused_median"] = (t["ms_per_step_median"]
                                                            / ours["ms_per_step_median"])
                    line += (f"  fused {t['ms_per_step']:>8.2f} ms {row['speedup_vs_torch_fused']:>5.2f}x"
                             f" (median {row['speedup_vs_torch_fused_median']:.2f}x)")
                if ours.get("add_gb_s_per_rank0"):
                    row["traffic_vs_inplace_add"] = (ours["gb_s_per_rank_min"]
                                                     / ours["add_gb_s_per_rank0"])
                    line += (f"  add_ {ours['add_gb_s_per_rank0']:.1f} GB/s/rank,"
                             f" x{row['traffic_vs_inplace_add']:.2f}")
                print(line, flush=True)
                rows.append(row)

    out = {
        "benchmark": "bench_sharded",
        "description": "ShardedOptimizer.step() on 8 row-sharded float32 tensors (rows x 1024), "
                       "Gloo ranks on one machine; best of --repeat of (last rank end - first rank start)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "loadavg_at_end": os.getloadavg()},
        "torch_version": torch_version,
        "repeat": args.repeat,
        "rounds": args.rounds,
        "target_speedup_vs_torch": TARGET_SPEEDUP,
        "results": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {os.path.relpath(args.out)}")
    if torch_version:
        worst = min(r["speedup_vs_torch"] for r in rows)
        print(f"speedup vs torch ShardedOptimizer: worst {worst:.1f}x (target >= {TARGET_SPEEDUP}x)")


if __name__ == "__main__":
    main()
