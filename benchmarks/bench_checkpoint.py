"""bench_checkpoint.py — distributed checkpoint save / load GB/s, shardopt vs torch DCP.

Scenario: --size GiB (default 1) of float32 state in 8 tensors of (rows, 8192), row-sharded
over 4 Gloo ranks on this machine (shardopt: ChunkShardingSpec(dim=0) ShardedTensors;
torch 2.13: DTensors with Shard(0) on a 4-rank CPU device mesh, the layout torch's
distributed checkpoint is built for).  Measured in one run, into the same directory:

* disk: this machine's sequential write of a file of the same size (64 MiB blocks, then
  fsync; buffered and O_DIRECT, the better one is "the disk") and its cold read -- the
  dd-like ceiling;
* save on 4 ranks: shardopt.distributed.checkpoint.save vs torch.distributed.checkpoint.save
  (default FileSystemWriter, and thread_count=4 -- its fastest setting here);
* load 4->4 (same sharding) and 4->2 (resharding: the same rows over 2 ranks) for both.

Every read is cold: the checkpoint's files (and the dd file) are evicted from the page cache
with posix_fadvise(DONTNEED) before each load -- they are clean after fsync, so this needs
no privileges.  A save or load lasts from a barrier to the last rank's return (all ranks on
CLOCK_MONOTONIC); GB/s = the state's bytes / that time; best of --repeat.  Loaded values are
checked (a few rows of every tensor) so a fast wrong load cannot pass.

Targets (issue 11): save >= 0.7x the disk's write bandwidth and >= 1.5x torch's save;
load with resharding 4->2 >= 1.5x torch's.

Usage: python benchmarks/bench_checkpoint.py [--size 1.0] [--dir DIR] [--repeat 2]
       [--no-torch]
Writes benchmarks/results/bench_checkpoint.json and prints a table.
"""
import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
COLS = 8192
NTENSORS = 8
GiB = 1 << 30


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _evict(path):
    """Drop the page-cache pages of every file under `path` (clean after fsync)."""
    paths = [path] if os.path.isfile(path) else [
        os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def disk_bandwidth(directory, nbytes):
    import numpy as np
    block = np.arange(min(nbytes, 64 << 20) // 4, dtype=np.float32).view(np.uint8)
    path = os.path.join(directory, "dd.bin")
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    done = 0
    while done < nbytes:
        done += os.write(fd, block[:min(len(block), nbytes - done)])
    os.fsync(fd)
    os.close(fd)
    t_write = time.perf_counter() - t0
    # the same bytes with O_DIRECT from a page-aligned buffer: the disk without the page
    # cache (buffered+fsync swings 0.3-1.8 GB/s on this shared VM, this one much less)
    import mmap
    abuf = mmap.mmap(-1, len(block))
    abuf[:] = block.tobytes()
    os.unlink(path)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_DIRECT", 0), 0o644)
    done = 0
    while done < nbytes:
        done += os.write(fd, abuf)
    os.fsync(fd)
    os.close(fd)
    t_direct = time.perf_counter() - t0
    abuf.close()
    _evict(path)
    buf = bytearray(len(block))
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    t_read = time.perf_counter() - t0
    os.unlink(path)
    return nbytes / t_write / 1e9, nbytes / t_read / 1e9, done / t_direct / 1e9


def _pattern(T, rows_lo, rows_hi, i, lib):
    """Rows [lo, hi) of tensor i: value = i * 1e6 + row + col / 8192 (cheap to make and check)."""
    import numpy as np
    r = np.arange(rows_lo, rows_hi, dtype=np.float32)[:, None]
    c = np.arange(COLS, dtype=np.float32)[None, :] / COLS
    a = (r + c + np.float32(i * 1e3)).astype(np.float32)
    return T.from_numpy(a)


def _rank_main(lib, task, rank, world, port, rows, ckpt, queue):
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import numpy as np
        if lib == "shardopt":
            sys.path.insert(0, ROOT)
            import shardopt as T
            import shardopt.distributed as dist
            import shardopt.distributed.checkpoint as dcp
            from shardopt.sharded_tensor import Shard, ShardedTensor
            from shardopt.sharding_spec import ChunkShardingSpec
            from shardopt.sharded_tensor.metadata import TensorProperties
        else:
            import warnings
            warnings.filterwarnings("ignore")
            import torch as T
            import torch.distributed as dist
            import torch.distributed.checkpoint as dcp
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.tensor import DTensor, Shard as DShard
            T.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world)
        per = rows // world
        lo, hi = rank * per, (rank + 1) * per
        state = {}
        if lib == "shardopt":
            spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(world)])
            md = spec.build_metadata(T.Size([rows, COLS]), TensorProperties(dtype=T.float32))
            for i in range(NTENSORS):
                local = _pattern(T, lo, hi, i, lib) if task == "save" else T.zeros(per, COLS)
                smd = [m for m in md.shards_metadata if m.placement.rank() == rank][0]
                state[f"w{i}"] = ShardedTensor._init_from_local_shards_and_global_metadata(
                    [Shard(local, smd)], md)
        else:
            mesh = init_device_mesh("cpu", (world,))
            for i in range(NTENSORS):
                local = _pattern(T, lo, hi, i, lib) if task == "save" else T.zeros(per, COLS)
                state[f"w{i}"] = DTensor.from_local(local, mesh, [DShard(0)], run_check=False,
                                                    shape=(rows, COLS),
                                                    stride=(COLS, 1))
        kwargs = {}
        if lib == "torch" and task == "save" and os.environ.get("BENCH_TORCH_THREADS"):
            kwargs["storage_writer"] = dcp.FileSystemWriter(
                ckpt, thread_count=int(os.environ["BENCH_TORCH_THREADS"]))
        dist.barrier()
        t0 = time.perf_counter()
        if task == "save":
            if kwargs:
                dcp.save(state, **kwargs)
            else:
                dcp.save(state, checkpoint_id=ckpt)
        else:
            dcp.load(state, checkpoint_id=ckpt)
        t1 = time.perf_counter()
        dist.barrier()
        if task == "load":  # a few rows of every tensor must be the saved values
            for i in range(NTENSORS):
                v = state[f"w{i}"]
                loc = v.local_shards()[0].tensor if lib == "shardopt" else v.to_local()
                for r in (0, per // 2, per - 1):
                    rr = np.arange(lo + r, lo + r + 1, dtype=np.float32)[:, None]
                    want = (rr + np.arange(COLS, dtype=np.float32)[None, :] / COLS
                            + np.float32(i * 1e3)).astype(np.float32)
                    got = loc[r:r + 1].numpy()
                    if not np.array_equal(got, want):
                        raise AssertionError(f"{lib} load: w{i} row {lo + r} is wrong")
        dist.destroy_process_group()
        queue.put((rank, {"span": (t0, t1)}))
    except BaseException as e:  # report, never hang the parent
        import traceback
        queue.put((rank, {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"}))


def run(lib, task, world, rows, ckpt, env=None):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        procs = [ctx.Process(target=_rank_main, args=(lib, task, r, world, port, rows, ckpt, queue))
                 for r in range(world)]
        for p in procs:
            p.start()
    finally:
        os.environ.clear()
        os.environ.update(old)
    results = {}
    deadline = time.time() + 900
    while len(results) < world and time.time() < deadline:
        try:
            r, res = queue.get(timeout=5)
            results[r] = res
        except Exception:
            if any(p.exitcode not in (None, 0) for p in procs):
                break
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
    errs = [res["error"] for res in results.values() if "error" in res]
    if errs or len(results) < world:
        raise RuntimeError(f"{lib} {task} on {world} ranks failed:\n" + "\n".join(errs))
    return max(r["span"][1] for r in results.values()) - min(r["span"][0] for r in results.values())


def best(fn, repeat):
    return min(fn() for _ in range(repeat))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=float, default=1.0, help="GiB of state (default 1)")
    ap.add_argument("--dir", default=None, help="directory for the checkpoints (default: a "
                    "temp dir in benchmarks/)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_checkpoint.json"))
    args = ap.parse_args()
    rows = max(4, int(args.size * GiB / 4 / COLS / NTENSORS) // 4 * 4)
    nbytes = rows * COLS * 4 * NTENSORS
    base = tempfile.mkdtemp(prefix="bench-ckpt-", dir=args.dir or HERE)
    res = {"machine": platform.node(), "python": sys.version.split()[0], "bytes": nbytes,
           "ranks_save": 4, "tensors": NTENSORS, "shape": [rows, COLS], "dir": base}
    try:
        bw = [disk_bandwidth(base, nbytes) for _ in range(args.repeat)]
        wb, r, wd = (max(b[i] for b in bw) for i in range(3))
        w = max(wb, wd)  # the disk's write bandwidth: the better of the two ways
        res["disk_write_buffered_GBps"], res["disk_write_direct_GBps"] = wb, wd
        res["disk_write_GBps"], res["disk_read_GBps"] = w, r
        print(f"state: {nbytes / GiB:.2f} GiB in {NTENSORS} x ({rows}, {COLS}) float32, "
              f"row-sharded on 4 ranks; directory {base}")
        print(f"disk (dd-like, 64 MiB blocks + fsync / cold read): write {wb:.2f} GB/s buffered, "
              f"{wd:.2f} GB/s O_DIRECT; read {r:.2f} GB/s")

        def save(lib, env=None, name="ck"):
            ck = os.path.join(base, f"{lib}-{name}")

            def once():
                shutil.rmtree(ck, ignore_errors=True)
                return run(lib, "save", 4, rows, ck, env)
            return ck, best(once, args.repeat)

        def load(lib, ck, world):
            def once():
                _evict(ck)
                return run(lib, "load", world, rows, ck)
            return best(once, args.repeat)

        libs = ["shardopt"] + ([] if args.no_torch else ["torch"])
        for lib in libs:
            ck, t = save(lib)
            res[f"{lib}_save_GBps"] = nbytes / t / 1e9
            if lib == "torch":
                _, t4 = save(lib, {"BENCH_TORCH_THREADS": "4"}, "threads4")
                res["torch_threads4_save_GBps"] = nbytes / t4 / 1e9
            res[f"{lib}_load44_GBps"] = nbytes / load(lib, ck, 4) / 1e9
            res[f"{lib}_load42_GBps"] = nbytes / load(lib, ck, 2) / 1e9
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rows_out = [("save 4 ranks", "shardopt_save_GBps", "torch_save_GBps"),
                ("load 4->4", "shardopt_load44_GBps", "torch_load44_GBps"),
                ("load 4->2 (reshard)", "shardopt_load42_GBps", "torch_load42_GBps")]
    print(f"\n| case | shardopt GB/s | torch DCP GB/s | shardopt / torch | shardopt / disk |")
    print("|---|---:|---:|---:|---:|")
    for name, a, b in rows_out:
        disk = res["disk_write_GBps"] if "save" in name else res["disk_read_GBps"]
        tb = res.get(b)
        print(f"| {name} | {res[a]:.2f} | {tb if tb is None else f'{tb:.2f}'} | "
              f"{'-' if tb is None else f'{res[a] / tb:.2f}'} | {res[a] / disk:.2f} |")
    if "torch_threads4_save_GBps" in res:
        print(f"torch save with FileSystemWriter(thread_count=4): "
              f"{res['torch_threads4_save_GBps']:.2f} GB/s")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
