"""bench_rpc.py — round-trip latency and throughput of shardopt.distributed.rpc, and torch's
RPC (TensorPipe) in the same run.

Two workers (spawned here, one process each); worker 0 times, worker 1 serves.  Cases:
``rpc_sync`` of a tiny call (operator.add on ints), ``rpc_sync`` echoing a float32 tensor of
1 MiB, ``remote`` + ``to_here`` of a small tensor, and 64 ``rpc_async`` calls in flight then
waited.  Each case: warm-up, then N timed repetitions, median (and p90) per call.  shardopt
and torch run one after the other in separate worker pairs (two RPC stacks cannot share a
process's name-to-rank registry); torch's default options are its defaults (16 threads,
TensorPipe's transports) — also its fastest config on one host.

Usage: python benchmarks/bench_rpc.py [--iters 300]
Prints a table and writes benchmarks/results/bench_rpc.json.
"""
import argparse
import json
import multiprocessing
import operator
import os
import platform
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _echo(x):
    return x


def _time(fn, iters):
    for _ in range(max(3, iters // 10)):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return {"median_us": statistics.median(ts) * 1e6, "p90_us": ts[int(0.9 * len(ts))] * 1e6}


def _worker(lib, rank, port, iters, q):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if lib == "torch":
        import torch as T  # noqa: PLC0415
        from torch.distributed import rpc  # noqa: PLC0415
    else:
        import shardopt as T  # noqa: PLC0415
        from shardopt.distributed import rpc  # noqa: PLC0415
    rpc.init_rpc(f"w{rank}", rank=rank, world_size=2)
    if rank == 0:
        big = T.ones(262144)  # 1 MiB of float32
        small = T.ones(16)
        res = {
            "rpc_sync tiny": _time(lambda: rpc.rpc_sync("w1", operator.add, args=(1, 2)), iters),
            "rpc_sync echo 1 MiB": _time(lambda: rpc.rpc_sync("w1", _echo, args=(big,)),
                                         max(20, iters // 5)),
            "remote + to_here": _time(lambda: rpc.remote("w1", _echo, args=(small,)).to_here(),
                                      iters),
            "64 x rpc_async, wait": _time(lambda: [f.wait() for f in [
                rpc.rpc_async("w1", operator.add, args=(i, 1)) for i in range(64)]],
                max(10, iters // 10)),
        }
        q.put(res)
    rpc.shutdown()


def _run(lib, iters):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    ps = [ctx.Process(target=_worker, args=(lib, r, port, iters, q)) for r in range(2)]
    for p in ps:
        p.start()
    res = q.get(timeout=600)
    for p in ps:
        p.join(60)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=300)
    args = ap.parse_args()
    results = {"shardopt": _run("shardopt", args.iters)}
    try:
        import torch.distributed.rpc  # noqa: F401,PLC0415
        results["torch"] = _run("torch", args.iters)
    except ImportError:
        pass
    print(f"{'case':24s} {'shardopt med/p90 us':>22s} {'torch med/p90 us':>20s} {'ratio':>7s}")
    for case, s in results["shardopt"].items():
        t = results.get("torch", {}).get(case)
        tt = f"{t['median_us']:9.0f}/{t['p90_us']:9.0f}" if t else "-"
        ratio = f"{t['median_us'] / s['median_us']:6.2f}x" if t else "-"
        print(f"{case:24s} {s['median_us']:10.0f}/{s['p90_us']:10.0f} {tt:>20s} {ratio:>7s}")
    print("ratio = torch time / shardopt time (> 1: shardopt faster)")
    out = {"machine": platform.platform(), "cpus": os.cpu_count(), "iters": args.iters,
           "results": results}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "bench_rpc.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
