"""bench_gelu.py — GELU forward and backward (erf and tanh forms), float32, one thread,
shardopt vs torch on the same data in the same run.

Each case makes a new output tensor per call, as the training step does (so both libraries
pay for their allocation).  Repetitions alternate between the libraries; reported: median
and min-max over --repeat repetitions, and torch's median / shardopt's median (> 1: shardopt
faster).  Target (issue 13): shardopt's time within 1.2x of torch's (ratio >= 1/1.2 = 0.83).

Usage: python benchmarks/bench_gelu.py [--numel N] [--repeat R] [--out PATH]
"""
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import shardopt as so  # noqa: E402
from shardopt._ops import elementwise as ew  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=int, default=1 << 22)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_gelu.json"))
    args = ap.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(args.numel) * 3).astype(np.float32)
    g = rng.standard_normal(args.numel).astype(np.float32)
    sx, sg = so.from_numpy(x), so.from_numpy(g)
    cases = {}
    for ap_ in ("none", "tanh"):
        cases[f"forward {ap_}"] = (lambda a=ap_: so.gelu(sx, approximate=a),
                                   torch and (lambda a=ap_, t=torch.from_numpy(x):
                                              torch.nn.functional.gelu(t, approximate=a)))
        cases[f"backward {ap_}"] = (
            lambda a=ap_: ew._gelu_backward(sg, sx, approximate=a),
            torch and (lambda a=ap_, t=torch.from_numpy(x), tg=torch.from_numpy(g):
                       torch.ops.aten.gelu_backward(tg, t, approximate=a)))
    rows = []
    print(f"GELU, {args.numel} float32 elements, one thread, median of {args.repeat}")
    for name, (fs, ft) in cases.items():
        ts, tt = [], []
        fs()
        if ft:
            ft()
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fs()
            ts.append(time.perf_counter() - t0)
            if ft:
                t0 = time.perf_counter()
                ft()
                tt.append(time.perf_counter() - t0)
        row = {"case": name, "shardopt_ms": statistics.median(ts) * 1e3,
               "shardopt_min_ms": min(ts) * 1e3, "shardopt_max_ms": max(ts) * 1e3}
        line = f"  {name:<14} shardopt {row['shardopt_ms']:7.3f} ms ({min(ts)*1e3:.3f}-{max(ts)*1e3:.3f})"
        if tt:
            row.update({"torch_ms": statistics.median(tt) * 1e3, "torch_min_ms": min(tt) * 1e3,
                        "torch_max_ms": max(tt) * 1e3})
            row["ratio_torch_over_shardopt"] = row["torch_ms"] / row["shardopt_ms"]
            ok = row["ratio_torch_over_shardopt"] >= 1 / 1.2
            line += (f"  torch {row['torch_ms']:7.3f} ms ({min(tt)*1e3:.3f}-{max(tt)*1e3:.3f})"
                     f"  torch/shardopt {row['ratio_torch_over_shardopt']:.2f}"
                     f" {'ok' if ok else 'MISSED'}")
        print(line)
        rows.append(row)
    res = {"numel": args.numel, "repeat": args.repeat, "date": time.strftime("%Y-%m-%d %H:%M %Z"),
           "torch": getattr(torch, "__version__", None), "rows": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
