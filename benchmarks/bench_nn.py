"""bench_nn.py — softmax / log_softmax / cross-entropy / LayerNorm kernels against torch.

Workload: one (rows, cols) float32 tensor, (4096, 4096) by default.  Cases:
  softmax(x, -1), log_softmax(x, -1), cross_entropy(x, target) (class indices, 'mean'),
  layer_norm(x, (cols,), w, b) forward, and forward + backward (grad of input, weight, bias
  from a ones grad), cross_entropy forward + backward.
Both libraries run one thread (torch.set_num_threads(1); shardopt's CPU kernels are
single-threaded) on the same values, interleaved case by case in the same run; torch is
also timed with its default thread count (torch_default_ms).  Each number is the best of
--repeat calls (this VM is shared and interference only adds time), and the median is
recorded as the spread.  Ratio = shardopt time / torch one-thread time (target <= 1.1).
The "out=" rows time both writing into a preallocated output (the fastest form: no fresh
64 MiB output to fault in per call); the others allocate their result, as a plain call does.

Usage: python benchmarks/bench_nn.py [--rows R] [--cols C] [--repeat N]
Writes benchmarks/results/bench_nn.json and prints a table.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import shardopt  # noqa: E402
from shardopt.nn import functional as SF  # noqa: E402

TARGET = 1.1


def timed(fn, repeat):
    fn()  # warm-up: page faults, lazy allocations
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def cases(lib, x_np, t_np, w_np, b_np):
    if lib == "torch":
        import torch
        import torch.nn.functional as F
        T = torch.from_numpy
        x, t, w, b = T(x_np.copy()), T(t_np.copy()), T(w_np.copy()), T(b_np.copy())
        xg, wg, bg = (T(a.copy()).requires_grad_() for a in (x_np, w_np, b_np))
        ones = torch.ones_like(x)
        no_grad = torch.no_grad
    else:
        F = SF
        T = shardopt.from_numpy
        x, t, w, b = T(x_np.copy()), T(t_np.copy()), T(w_np.copy()), T(b_np.copy())
        xg, wg, bg = (T(a.copy()).requires_grad_() for a in (x_np, w_np, b_np))
        ones = shardopt.ones_like(x)
        no_grad = shardopt.no_grad
    cols = x_np.shape[1]

    def fwd(f):
        def run():
            with no_grad():
                f()
        return run

    def ln_fb():
        xg.grad = wg.grad = bg.grad = None
        F.layer_norm(xg, (cols,), wg, bg).backward(ones)

    def xe_fb():
        xg.grad = None
        F.cross_entropy(xg, t).backward()

    # the fastest form of both: a preallocated output (no fresh 64 MiB to fault in per call)
    lib_mod = torch if lib == "torch" else shardopt
    y = lib_mod.empty_like(x)
    return {
        "softmax out=": fwd(lambda: lib_mod.softmax(x, -1, out=y)),
        "log_softmax out=": fwd(lambda: lib_mod.log_softmax(x, -1, out=y)),
        "softmax": fwd(lambda: F.softmax(x, -1)),
        "log_softmax": fwd(lambda: F.log_softmax(x, -1)),
        "cross_entropy": fwd(lambda: F.cross_entropy(x, t)),
        "cross_entropy fwd+bwd": xe_fb,
        "layer_norm": fwd(lambda: F.layer_norm(x, (cols,), w, b)),
        "layer_norm fwd+bwd": ln_fb,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_nn.json"))
    args = ap.parse_args()
    try:
        import torch
        default_threads = torch.get_num_threads()
    except ImportError:
        torch = None
        default_threads = None
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.cols), dtype=np.float32)
    t = rng.integers(0, args.cols, size=args.rows).astype(np.int64)
    w = rng.standard_normal(args.cols, dtype=np.float32)
    b = rng.standard_normal(args.cols, dtype=np.float32)
    so_cases = cases("shardopt", x, t, w, b)
    th_cases = cases("torch", x, t, w, b) if torch is not None else {}
    rows = []
    for name, fn in so_cases.items():
        best, med = timed(fn, args.repeat)
        r = {"case": name, "shardopt_ms": best * 1e3, "shardopt_median_ms": med * 1e3}
        if name in th_cases:
            torch.set_num_threads(1)
            tb, tm = timed(th_cases[name], args.repeat)
            torch.set_num_threads(default_threads)
            td, _ = timed(th_cases[name], args.repeat)
            r.update(torch_ms=tb * 1e3, torch_median_ms=tm * 1e3, ratio=best / tb,
                     torch_default_ms=td * 1e3, ratio_default=best / td)
        rows.append(r)
    res = {"shape": [args.rows, args.cols], "dtype": "float32", "repeat": args.repeat,
           "target_ratio": TARGET, "threads": 1, "torch_default_threads": default_threads,
           "machine": {"cpu": platform.processor() or platform.machine(),
                       "cores": os.cpu_count(), "python": sys.version.split()[0],
                       "numpy": np.__version__,
                       "torch": torch.__version__ if torch is not None else None,
                       "torch_cpu_capability": (torch.backends.cpu.get_cpu_capability()
                                                if torch is not None else None)},
           "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}
    print(f"({args.rows}, {args.cols}) float32, one thread, best of {args.repeat} "
          f"(median in brackets); torch {res['machine']['torch']} "
          f"[{res['machine']['torch_cpu_capability']}]")
    print(f"{'case':<24} {'shardopt ms':>18} {'torch 1 thread ms':>18} {'ratio':>7}  target"
          f"   torch {default_threads} threads ms  ratio")
    for r in rows:
        tm = f"{r['torch_ms']:8.2f} ({r['torch_median_ms']:7.2f})" if "torch_ms" in r else "-"
        ratio = f"{r['ratio']:7.2f}" if "ratio" in r else "      -"
        ok = "" if "ratio" not in r else ("ok    " if r["ratio"] <= TARGET else "MISSED")
        dflt = f"{r['torch_default_ms']:8.2f}  {r['ratio_default']:7.2f}" if "ratio" in r else ""
        print(f"{r['case']:<24} {r['shardopt_ms']:8.2f} ({r['shardopt_median_ms']:7.2f}) "
              f"{tm:>18} {ratio}  {ok}   {dflt}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
