"""bench_tensor.py — memory-bound tensor ops: shardopt vs NumPy on the same arrays, same run.

Large float32 vectors (default 32M elements = 128 MiB each).  shardopt tensors are
zero-copy views of the NumPy arrays (`_C.from_numpy`), so both libraries touch exactly the
same memory.  Each case reports effective GB/s (the bytes the op must move: reads + writes,
e.g. 3 x 128 MiB for c = a + b, 4 x for the fused a += v * t1 * t2) from the best of
--repeat runs, and the shardopt / NumPy ratio (target >= 0.9).  The machine's memcpy
(ctypes.memmove) is the ceiling for reference.

    python benchmarks/bench_tensor.py [--n 33554432] [--repeat 7] [--device cpu|cuda]

Writes benchmarks/results/bench_tensor.json.
"""
import argparse
import ctypes
import json
import os
import platform
import time

import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo checkout
import shardopt as so  # noqa: E402
from shardopt import _C  # noqa: E402


def best_time(fn, repeat, sync=None):
    fn()  # warm-up: page faults, lazy allocations
    if sync:
        sync()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32 * 1024 * 1024, help="elements per array")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "bench_tensor.json"))
    args = ap.parse_args()
    n, rep = args.n, args.repeat
    nbytes = n * 4
    rng = np.random.default_rng(0)
    A, B, C, T1, T2, TMP = (rng.standard_normal(n, dtype=np.float32) for _ in range(6))
    SRC, DST = rng.standard_normal(n, dtype=np.float32), np.empty(n, np.float32)

    rows = []

    def record(name, moved, t_so, t_np=None):
        gbs_so = moved / t_so / 1e9
        gbs_np = moved / t_np / 1e9 if t_np else None
        rows.append({"case": name, "bytes": moved, "shardopt_s": t_so, "shardopt_GBps": gbs_so,
                     "numpy_s": t_np, "numpy_GBps": gbs_np,
                     "ratio": gbs_so / gbs_np if gbs_np else None})

    # the ceiling: this machine's memcpy on the same sizes (read + write)
    t_memcpy = best_time(lambda: ctypes.memmove(DST.ctypes.data, SRC.ctypes.data, nbytes), rep)
    memcpy_gbs = 2 * nbytes / t_memcpy / 1e9

    if args.device == "cpu":
        a, b, c, t1, t2 = (_C.from_numpy(x) for x in (A, B, C, T1, T2))
        src, dst = _C.from_numpy(SRC), _C.from_numpy(DST)
        sync = None
    else:
        a, b, c, t1, t2, src, dst = (_C.from_numpy(x).cuda() for x in (A, B, C, T1, T2, SRC, DST))
        sync = so.cuda.synchronize

    def np_addcmul():  # what NumPy needs for a += v * t1 * t2 without a fused kernel
        np.multiply(T1, T2, out=TMP)
        np.multiply(TMP, 0.5, out=TMP)
        np.add(A, TMP, out=A)

    cases = [
        ("copy_ (dst.copy_(src) / np.copyto)", 2, lambda: dst.copy_(src),
         lambda: np.copyto(DST, SRC)),
        ("add, new tensor (so.add(a, b) / np.add(a, b))", 3, lambda: so.add(a, b),
         lambda: np.add(A, B)),
        ("add, out= (so.add(a, b, out=c) / np.add(a, b, out=c))", 3, lambda: so.add(a, b, out=c),
         lambda: np.add(A, B, out=C)),
        ("add_ in place (a.add_(b) / a += b)", 3, lambda: a.add_(b), lambda: np.add(A, B, out=A)),
        ("addcmul_ fused (a.addcmul_(t1, t2, value=0.5) / multiply+add)", 4,
         lambda: a.addcmul_(t1, t2, value=0.5), np_addcmul),
    ]
    for name, k, f_so, f_np in cases:
        t_so = best_time(f_so, rep, sync)
        t_np = best_time(f_np, rep) if args.device == "cpu" else None
        record(name, k * nbytes, t_so, t_np)

    print(f"shardopt bench_tensor: n={n} float32 ({nbytes / 2**20:.0f} MiB per array), "
          f"device={args.device}, best of {rep}")
    print(f"memcpy (ctypes.memmove): {memcpy_gbs:.2f} GB/s")
    print(f"{'case':<66} {'shardopt GB/s':>13} {'NumPy GB/s':>11} {'ratio':>6}")
    for r in rows:
        np_s = f"{r['numpy_GBps']:.2f}" if r["numpy_GBps"] else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        print(f"{r['case']:<66} {r['shardopt_GBps']:>13.2f} {np_s:>11} {ratio:>6}")

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"benchmark": "bench_tensor", "n": n, "dtype": "float32", "device": args.device,
                   "repeat": rep, "memcpy_GBps": memcpy_gbs, "machine": platform.machine(),
                   "processor": platform.processor(), "cpus": os.cpu_count(),
                   "numpy": np.__version__, "rows": rows}, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
