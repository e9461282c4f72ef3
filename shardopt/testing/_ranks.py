"""Run one callable on ``world_size`` ranks, each with a Gloo process group: the engine of
``spawn_threads_and_init_comms``.

torch runs the ranks as threads over an in-process "threaded" process group.  shardopt's
default group is per process, so the ranks here are processes over a real Gloo group on
loopback (rendezvous through a FileStore); the decorated test body runs on every rank.
``run_test_on_ranks`` spawns fresh interpreters that rebuild the TestCase by class and
method name (safe whatever the parent did, CUDA included); ``run_on_ranks`` forks, for any
callable (the parent must not have initialised CUDA).  A rank reports an exception's
traceback or a skip through a pipe; the caller raises the first failing rank's traceback
(AssertionError) or the skip, and kills the other ranks once one failed or the timeout
passed.
"""
from __future__ import annotations

import functools
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
import unittest
from datetime import timedelta

__all__ = ["run_on_ranks", "run_test_on_ranks", "IN_RANK_ENV"]

# set in a rank process: the decorated test method runs its body there instead of spawning
IN_RANK_ENV = "_SHARDOPT_IN_RANK"


def _test_body(cls, method_name, rank):
    test = cls(method_name)
    test.rank = rank
    getattr(test, method_name)()


def _child(rank, world_size, file_name, timeout, fn, conn):
    os.environ["_SHARDOPT_SPAWNED_RANK"] = str(rank)
    os.environ[IN_RANK_ENV] = str(rank)
    status = ("ok", None)
    dist = None
    try:
        import shardopt.distributed as dist  # noqa: PLC0415
        dist.init_process_group("gloo", init_method=f"file://{file_name}", rank=rank,
                                world_size=world_size, timeout=timedelta(seconds=timeout))
        fn(rank)
    except unittest.SkipTest as e:
        status = ("skip", str(e))
    except BaseException:
        status = ("error", traceback.format_exc())
    try:
        # report before tearing the group down: closing it makes the peers fail, and the
        # first report to arrive names the rank that caused the failure
        conn.send(status + (time.time(),))
        conn.close()
        if status[0] == "ok" and dist is not None and dist.is_initialized():
            dist.destroy_process_group()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0 if status[0] == "ok" else 1)


def run_on_ranks(fn, world_size: int, timeout: float = 100.0) -> None:
    """Call ``fn(rank)`` on ``world_size`` forked ranks inside a Gloo process group.

    Args:
        fn: called once per rank with that rank, after ``init_process_group``.
        world_size (int): number of ranks.
        timeout (float): seconds for all ranks together.
    """
    _run("fork", fn, world_size, timeout)


def run_test_on_ranks(test_case, method_name: str, world_size: int,
                      timeout: float = 100.0) -> None:
    """Run ``test_case.<method_name>`` on ``world_size`` spawned ranks inside a Gloo process
    group: each rank builds ``type(test_case)(method_name)``, sets its ``rank`` and calls
    the method (which sees ``IN_RANK_ENV`` and runs its body).

    Args:
        test_case (unittest.TestCase): the test whose method runs on the ranks.
        method_name (str): the decorated test method.
        world_size (int): number of ranks.
        timeout (float): seconds for all ranks together.
    """
    fn = functools.partial(_test_body, type(test_case), method_name)
    _run("spawn", fn, world_size, timeout)


def _run(start_method, fn, world_size, timeout):
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    ctx = multiprocessing.get_context(start_method)
    fd, file_name = tempfile.mkstemp(prefix="shardopt_ranks_")
    os.close(fd)
    os.unlink(file_name)
    procs, pipes = [], []
    try:
        for rank in range(world_size):
            parent_conn, child_conn = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, name=f"rank {rank}", daemon=True,
                            args=(rank, world_size, file_name, timeout, fn, child_conn))
            p.start()
            child_conn.close()
            procs.append(p)
            pipes.append(parent_conn)
        results = {}
        deadline = time.monotonic() + timeout
        while len(results) < world_size and time.monotonic() < deadline:
            for rank, conn in enumerate(pipes):
                if rank in results:
                    continue
                if conn.poll():
                    try:
                        results[rank] = conn.recv()
                    except (EOFError, OSError):
                        results[rank] = ("error", "(rank died without a report)", time.time())
                elif procs[rank].exitcode is not None and not conn.poll():
                    results[rank] = ("error", f"(rank died, exit code {procs[rank].exitcode})",
                                     time.time())
            if any(r[0] == "error" for r in results.values()):
                time.sleep(0.5)  # let the others report their own error if they have one
                for rank, conn in enumerate(pipes):
                    if rank not in results and conn.poll():
                        try:
                            results[rank] = conn.recv()
                        except (EOFError, OSError):
                            pass
                break
            time.sleep(0.01)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(5)
        for conn in pipes:
            conn.close()
        if os.path.exists(file_name):
            os.unlink(file_name)
    # by the time each rank reported: the first to fail is the cause, later failures usually
    # follow from it (a peer's group closing)
    errors = [(r, m) for r, (kind, m, _) in sorted(results.items(), key=lambda kv: kv[1][2])
              if kind == "error"]
    if errors:
        rank, tb = errors[0]
        raise AssertionError(f"rank {rank} of {world_size} failed:\n{tb}")
    if len(results) < world_size:
        missing = [r for r in range(world_size) if r not in results]
        raise AssertionError(f"timed out after {timeout} s waiting for ranks {missing}")
    skips = [m for kind, m, _ in results.values() if kind == "skip"]
    if skips:
        raise unittest.SkipTest(skips[0])
