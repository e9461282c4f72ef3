"""_ranks.py — the benchmarks' multi-process harness: one spawned process per rank, each
reporting one result dict through a queue, so a benchmark's rank function stays its own
scenario and timing.

A rank function is called as fn(*args, rank, queue) with args[..] as given (the rank is
inserted where run_ranks is told) and must put exactly one (rank, dict) on the queue:
its results, or {"error": text} (see rank_error).  run_ranks waits for every rank, never
hangs on a dead one, and raises with every rank's error.
"""
import multiprocessing as mp
import socket
import time


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (for a rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_error(e):
    """The dict a rank puts on the queue when it failed: the exception and its traceback."""
    import traceback
    return {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"}


def run_ranks(target, world, make_args, what, timeout=600):
    """Spawn `world` processes running target(*make_args(rank, queue)) and return
    {rank: result dict}.  Raises RuntimeError naming `what` if a rank reported an error,
    died without a result, or the whole run took longer than `timeout` seconds."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=make_args(r, queue)) for r in range(world)]
    for p in procs:
        p.start()
    results = {}
    deadline = time.time() + timeout
    while len(results) < world and time.time() < deadline:
        try:
            r, res = queue.get(timeout=5)
            results[r] = res
        except Exception:
            if any(p.exitcode not in (None, 0) for p in procs) and queue.empty():
                break
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    errors = [f"rank {r}: {res['error']}" for r, res in results.items() if "error" in res]
    if errors or len(results) < world:
        raise RuntimeError(f"{what} failed:\n" + "\n".join(errors or ["no result"]))
    return results
