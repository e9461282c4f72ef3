"""bench_indexing.py — indexing / selection / sorting ops: shardopt vs torch, same run.

Cases on a (rows, cols) float32 tensor (default 4096 x 4096): gather and scatter_add with a
random int64 index of the same shape, the row pick x[arange(n), target], row selection
x[idx], boolean-mask selection x[x > 0], index_select, masked_fill, cumsum, sort and topk(10)
along the last dim.  Each case is the best of --repeat runs; torch is timed in its default
thread configuration and with one thread (shardopt's kernels are single-threaded), and the
table reports shardopt's time over each (lower is better; < 1 means faster than torch).

    python benchmarks/bench_indexing.py [--rows 4096] [--cols 4096] [--repeat 5]

Writes benchmarks/results/bench_indexing.json.  torch is optional: without it only
shardopt's times are reported.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo checkout
import shardopt as so  # noqa: E402


def best_time(fn, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cases(m, x, idx, tgt, rows_idx, sel):
    n = x.shape[0]
    ar = m.arange(n)
    mask = x > 0
    return {
        "gather": lambda: x.gather(1, idx),
        "scatter_add": lambda: x.scatter_add(1, idx, x),
        "x[arange, target]": lambda: x[ar, tgt],
        "x[idx] (rows)": lambda: x[rows_idx],
        "x[mask]": lambda: x[mask],
        "index_select(1)": lambda: x.index_select(1, sel),
        "masked_fill": lambda: x.masked_fill(mask, 0.0),
        "cumsum(1)": lambda: x.cumsum(1),
        "sort(1)": lambda: x.sort(1),
        "topk(10)": lambda: x.topk(10),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "bench_indexing.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.cols), dtype=np.float32)
    IDX = rng.integers(0, args.cols, size=X.shape)
    TGT = rng.integers(0, args.cols, size=args.rows)
    ROWS = rng.integers(0, args.rows, size=args.rows)
    SEL = rng.integers(0, args.cols, size=args.cols)

    so_cases = cases(so, so.from_numpy(X), so.from_numpy(IDX), so.from_numpy(TGT),
                     so.from_numpy(ROWS), so.from_numpy(SEL))
    try:
        import torch
    except ImportError:
        torch = None
    th_cases = None
    if torch is not None:
        th_cases = cases(torch, torch.from_numpy(X), torch.from_numpy(IDX),
                         torch.from_numpy(TGT), torch.from_numpy(ROWS), torch.from_numpy(SEL))
        default_threads = torch.get_num_threads()
    rows = []
    for name, fn in so_cases.items():
        t_so = best_time(fn, args.repeat)
        row = {"case": name, "shardopt_s": t_so}
        if th_cases is not None:
            torch.set_num_threads(default_threads)
            row["torch_default_s"] = best_time(th_cases[name], args.repeat)
            torch.set_num_threads(1)
            row["torch_1thread_s"] = best_time(th_cases[name], args.repeat)
            torch.set_num_threads(default_threads)
            row["ratio_vs_default"] = t_so / row["torch_default_s"]
            row["ratio_vs_1thread"] = t_so / row["torch_1thread_s"]
        rows.append(row)

    print(f"shape ({args.rows}, {args.cols}) float32, best of {args.repeat}"
          + (f"; torch {torch.__version__}, default threads {default_threads}" if torch else ""))
    print(f"{'case':<20}{'shardopt ms':>12}{'torch ms':>10}{'torch-1t ms':>12}"
          f"{'so/torch':>10}{'so/1t':>8}")
    for r in rows:
        if "torch_default_s" in r:
            print(f"{r['case']:<20}{r['shardopt_s'] * 1e3:>12.2f}{r['torch_default_s'] * 1e3:>10.2f}"
                  f"{r['torch_1thread_s'] * 1e3:>12.2f}{r['ratio_vs_default']:>10.2f}"
                  f"{r['ratio_vs_1thread']:>8.2f}")
        else:
            print(f"{r['case']:<20}{r['shardopt_s'] * 1e3:>12.2f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"benchmark": "bench_indexing", "rows": args.rows, "cols": args.cols,
                   "dtype": "float32", "repeat": args.repeat, "machine": platform.machine(),
                   "cpu_count": os.cpu_count(),
                   "torch": torch.__version__ if torch else None, "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
