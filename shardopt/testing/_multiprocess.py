"""MultiProcessTestCase and the distributed test decorators (torch's common_distributed).

Two ways to run a multi-rank test:
- spawned (default): the test process (rank -1) starts ``world_size`` children with the
  "spawn" method; each rebuilds the TestCase, sets ``self.rank`` / ``self.file_name`` and runs
  the test method.  A child reports an exception's traceback (exit 10) or a skip (a skip exit
  code plus the reason) through a pipe; the parent enforces a per-test timeout, stops the
  other ranks once one fails, and raises the first failing rank's traceback.  As in torch,
  setUp/tearDown run only in the parent.
- under the launcher (``python -m shardopt.run --nproc-per-node N -m pytest ...``): RANK and
  WORLD_SIZE are in the environment, so the test body runs directly in this process as that
  rank; process groups rendezvous through one TCPStore per process (rank 0 serves it at
  MASTER_ADDR:MASTER_PORT), with a fresh key prefix per test.
"""
from __future__ import annotations

import functools
import multiprocessing
import os
import socket
import sys
import tempfile
import time
import traceback
import unittest
from datetime import timedelta

from ._comparison import TestCase

__all__ = [
    "MultiProcessTestCase", "TEST_SKIPS", "TestSkip", "with_comms", "requires_gloo",
    "requires_nccl", "skip_if_lt_x_gpu", "run_tests", "launched_rank", "tp_transports",
]

MAIN_PROCESS_RANK = -1
TEST_ERROR_EXIT_CODE = 10
TIMEOUT_DEFAULT = float(os.environ.get("SHARDOPT_TEST_TIMEOUT", "100"))


class TestSkip:
    def __init__(self, exit_code, message):
        self.exit_code, self.message = exit_code, message


TEST_SKIPS = {
    "backend_unavailable": TestSkip(72, "Skipped because distributed backend is not available."),
    "small_worldsize": TestSkip(73, "Skipped due to small world size."),
    "odd_worldsize": TestSkip(87, "Skipped due to odd world size."),
    "no_cuda": TestSkip(74, "CUDA is not available."),
    "multi-gpu-1": TestSkip(75, "Need at least 1 CUDA device"),
    "multi-gpu-2": TestSkip(77, "Need at least 2 CUDA devices"),
    "multi-gpu-3": TestSkip(80, "Need at least 3 CUDA devices"),
    "multi-gpu-4": TestSkip(81, "Need at least 4 CUDA devices"),
    "multi-gpu-5": TestSkip(82, "Need at least 5 CUDA devices"),
    "multi-gpu-6": TestSkip(83, "Need at least 6 CUDA devices"),
    "multi-gpu-7": TestSkip(84, "Need at least 7 CUDA devices"),
    "multi-gpu-8": TestSkip(85, "Need at least 8 CUDA devices"),
    "nccl": TestSkip(76, "c10d not compiled with NCCL support"),
    "generic": TestSkip(86, "Test skipped at subprocess level, look at subprocess log for skip reason"),
    "importerror": TestSkip(88, "Test skipped due to missing import"),
}
_SKIP_CODES = {s.exit_code: s.message for s in TEST_SKIPS.values()}


def launched_rank():
    """(rank, world_size) when running under the launcher (torchrun-style env), else None."""
    if os.environ.get("_SHARDOPT_SPAWNED_RANK") is not None:
        return None
    r, w = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if r is None or w is None:
        return None
    return int(r), int(w)


def _cuda_device_count():
    try:
        import shardopt  # noqa: PLC0415
        return shardopt.cuda.device_count() if shardopt.cuda.is_available() else 0
    except Exception:  # CPU-only build or no driver
        return 0


def _dist():
    import shardopt.distributed as dist  # noqa: PLC0415
    return dist


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Skip(unittest.SkipTest):
    def __init__(self, key_or_msg, exit_code=None):
        skip = TEST_SKIPS.get(key_or_msg)
        super().__init__(skip.message if skip else key_or_msg)
        self.exit_code = skip.exit_code if skip else (exit_code or TEST_SKIPS["generic"].exit_code)


_launch_state = {"store": None, "test": 0, "pg": 0}


def _launcher_store(world, rank, timeout):
    """The one TCPStore client of a launched process (the launcher serves the store, or
    rank 0 does when launched by something else);
    every test namespaces its keys, so a late rank never sees an earlier test's values."""
    if _launch_state["store"] is None:
        from shardopt.distributed.distributed_c10d import _env_store  # noqa: PLC0415
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        _launch_state["store"] = _env_store(rank, world, timedelta(seconds=timeout))
    return _launch_state["store"]


class MultiProcessTestCase(TestCase):
    """Runs each test method in ``world_size`` processes (default 4), one per rank."""

    TIMEOUT = TIMEOUT_DEFAULT  # seconds per test (all ranks together)

    @property
    def world_size(self) -> int:
        return 4

    def __init__(self, method_name="runTest", methodName="runTest"):
        if methodName != "runTest":
            method_name = methodName
        super().__init__(method_name)
        self.rank = MAIN_PROCESS_RANK
        self.file_name = None
        self.processes = []
        self._pipes = []
        fn = getattr(self, method_name, None)
        if fn is not None:
            setattr(self, method_name, self._join_or_run(fn))

    # -- parent side -------------------------------------------------------------------
    def _join_or_run(self, fn):
        @functools.wraps(fn)
        def wrapper():
            if self.rank != MAIN_PROCESS_RANK:
                return fn()
            launched = launched_rank()
            if launched is not None:
                return self._run_launched(fn, *launched)
            if not self.processes:
                self._spawn_processes()
            self._join_processes()
        return wrapper

    def _run_launched(self, fn, rank, world):
        if world != self.world_size:
            raise unittest.SkipTest(
                f"test needs world_size {self.world_size}, launched with {world}")
        self.rank = rank
        store = _launcher_store(world, rank, self.TIMEOUT)
        _launch_state["test"] += 1
        _launch_state["pg"] = 0
        # Rank 0 makes a fresh rendezvous file per test and tells the others through the
        # launch's store (a name derived from the test alone could be stale or raced).
        key = f"harness/{_launch_state['test']}/file_name"
        if rank == 0:
            fd, name = tempfile.mkstemp(prefix="shardopt_test_")
            os.close(fd)
            os.unlink(name)
            store.set(key, name)
        self.file_name = store.get(key).decode()
        try:
            return fn()
        finally:
            self.rank = MAIN_PROCESS_RANK
            store.set(f"{key}/done{rank}", "1")
            if rank == 0:
                store.wait([f"{key}/done{r}" for r in range(world)])
                if os.path.exists(self.file_name):
                    os.unlink(self.file_name)

    def _current_test_name(self):
        return self.id().split(".")[-1]

    def _start_processes(self, proc=None):
        ctx = multiprocessing.get_context("spawn")
        fd, self.file_name = tempfile.mkstemp(prefix="shardopt_test_")
        os.close(fd)
        os.unlink(self.file_name)  # the store creates it; a stale one must not exist
        port = _free_port()
        self.processes, self._pipes = [], []
        for rank in range(self.world_size):
            parent_conn, child_conn = ctx.Pipe(duplex=False)
            p = ctx.Process(target=type(self)._run, name=f"process {rank}", daemon=True,
                            args=(rank, self._current_test_name(), self.file_name,
                                  child_conn, port))
            p.start()
            child_conn.close()
            self.processes.append(p)
            self._pipes.append(parent_conn)

    def _spawn_processes(self):
        if launched_rank() is not None:
            return
        self._start_processes()

    def _join_processes(self, fn=None):
        deadline = time.monotonic() + self.TIMEOUT
        messages = {}
        timed_out = False
        first_bad = None
        stop_at = None
        try:
            while True:
                for rank, (p, conn) in enumerate(zip(self.processes, self._pipes)):
                    while rank not in messages and conn.poll():
                        try:
                            messages[rank] = conn.recv()
                        except (EOFError, OSError):
                            break
                codes = [p.exitcode for p in self.processes]
                if first_bad is None:
                    for rank, c in enumerate(codes):
                        if c not in (None, 0) and c not in _SKIP_CODES:
                            first_bad, stop_at = rank, time.monotonic() + 1.0
                            break
                if all(c is not None for c in codes):
                    break
                now = time.monotonic()
                if stop_at is not None and now > stop_at:
                    break  # the others are probably blocked on the failed rank
                if now > deadline:
                    timed_out = True
                    break
                time.sleep(0.01)
        finally:
            for p in self.processes:
                if p.is_alive():
                    p.terminate()
            for p in self.processes:
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join(5)
            for rank, conn in enumerate(self._pipes):
                try:
                    if rank not in messages and conn.poll():
                        messages[rank] = conn.recv()
                except (EOFError, OSError):
                    pass
                conn.close()
            if self.file_name and os.path.exists(self.file_name):
                os.unlink(self.file_name)
        self._check_return_codes(messages, timed_out, first_bad)

    def _check_return_codes(self, messages, timed_out, first_bad):
        codes = [p.exitcode for p in self.processes]
        # Errors in the order the ranks hit them: one failing rank makes its peers fail next
        # (its connections close), so the lowest rank's error is often only a consequence.
        errors = sorted(((m[2], r, m[1]) for r, m in messages.items() if m[0] == "error"))
        if first_bad is not None or errors:
            rank = errors[0][1] if errors else first_bad
            tb = errors[0][2] if errors else "(no traceback: the process died)"
            later = "".join(f"\n  then rank {r}: {(m.strip().splitlines() or ['?'])[-1]}"
                            for _, r, m in errors[1:])
            raise AssertionError(
                f"Process {rank} exited with error code {codes[rank]} and exception:\n{tb}\n"
                f"exit codes: {codes}{later}")
        if timed_out:
            raise AssertionError(
                f"Timing out after {self.TIMEOUT} seconds; exit codes: {codes} "
                f"(None = still running, killed)")
        first = codes[0]
        for rank, c in enumerate(codes):
            if c != first:
                raise AssertionError(
                    f"Expect process {rank} exit code to match Process 0 exit code of "
                    f"{first}, but got {c}")
        if first in _SKIP_CODES:
            msgs = [m[1] for m in messages.values() if m[0] == "skip"]
            raise unittest.SkipTest(msgs[0] if msgs else _SKIP_CODES[first])

    # -- child side --------------------------------------------------------------------
    @classmethod
    def _run(cls, rank, test_name, file_name, pipe, port):
        os.environ["_SHARDOPT_SPAWNED_RANK"] = str(rank)
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(port))
        self = cls(test_name)
        self.rank = rank
        self.file_name = file_name
        self.run_test(test_name, pipe)

    def run_test(self, test_name, parent_pipe):
        try:
            getattr(self, test_name)()
        except unittest.SkipTest as e:
            parent_pipe.send(("skip", str(e)))
            parent_pipe.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(getattr(e, "exit_code", TEST_SKIPS["generic"].exit_code))
        except BaseException:
            tb = traceback.format_exc()
            print(f"[rank {self.rank}] {tb}", file=sys.stderr, flush=True)
            parent_pipe.send(("error", tb, time.time()))
            parent_pipe.close()
            sys.stdout.flush()
            os._exit(TEST_ERROR_EXIT_CODE)
        parent_pipe.send(("ok", None))
        parent_pipe.close()
        sys.stdout.flush()
        sys.stderr.flush()
        # os._exit: a spawned child must not run the test runner's atexit hooks.
        os._exit(0)

    # -- process-group helpers (torch's ShardedTensorTestBase names) -----------------------
    def init_pg(self, backend=None, timeout=None):
        dist = _dist()
        if backend is None:
            backend = _default_backend(self.world_size)
        if backend not in ("nccl", "gloo", "mpi", "hccl"):
            raise RuntimeError(f"Backend {backend} not supported!")
        timeout = timeout or timedelta(seconds=self.TIMEOUT)
        launched = launched_rank()
        if launched is not None:
            rank, world = launched
            store = _launcher_store(world, rank, self.TIMEOUT)
            _launch_state["pg"] += 1
            prefix = f"harness/{_launch_state['test']}/pg{_launch_state['pg']}"
            dist.init_process_group(backend, store=dist.PrefixStore(prefix, store), rank=rank,
                                    world_size=world, timeout=timeout)
        else:
            dist.init_process_group(backend, init_method=f"file://{self.file_name}",
                                    world_size=self.world_size, rank=self.rank, timeout=timeout)
        if backend == "nccl":
            import shardopt  # noqa: PLC0415
            shardopt.cuda.set_device(self.rank)

    def init_rpc(self):
        """torch's test-base init_rpc: worker names "worker<rank>", rendezvous through the
        test's file (spawned) or the launch's store (launched)."""
        from shardopt.distributed import rpc  # noqa: PLC0415
        opts = rpc.TensorPipeRpcBackendOptions(rpc_timeout=self.TIMEOUT)
        launched = launched_rank()
        if launched is not None:
            rank, world = launched
            store = _launcher_store(world, rank, self.TIMEOUT)
            _launch_state["pg"] += 1
            prefix = f"harness/{_launch_state['test']}/rpc{_launch_state['pg']}"
            rpc._init_rpc_with_store(f"worker{rank}", rank, world,
                                     _dist().PrefixStore(prefix, store), opts)
            return
        opts.init_method = f"file://{self.file_name}"
        rpc.init_rpc(name=f"worker{self.rank:d}", rank=self.rank, world_size=self.world_size,
                     rpc_backend_options=opts)

    def init_comms(self, init_rpc=True, backend=None):
        if init_rpc:
            self.init_rpc()
        self.init_pg(backend)

    def destroy_comms(self, destroy_rpc=True):
        dist = _dist()
        dist.barrier()
        if destroy_rpc and dist.rpc._is_current_rpc_agent_set():
            dist.rpc.shutdown()
        dist.destroy_process_group()


def _default_backend(world_size):
    dist = _dist()
    if dist.is_nccl_available() and _cuda_device_count() >= world_size:
        return "nccl"
    return "gloo"


def with_comms(func=None, init_rpc=True, backend=None):
    """Initialise a process group around a test method and destroy it afterwards.

    Usable bare (``@with_comms``) or with arguments.  ``backend=None`` picks nccl when there
    is a GPU per rank, gloo otherwise; an explicit nccl backend skips (exit code of
    "multi-gpu-N") when there are fewer GPUs than ranks.  ``init_rpc=True`` (the default, as in
    torch's sharded-tensor test base) also starts RPC (worker names "worker<rank>") before
    the group and shuts it down after it.
    """
    if func is None:
        return functools.partial(with_comms, init_rpc=init_rpc, backend=backend)

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        be = backend or _default_backend(self.world_size)
        if be == "nccl" and _cuda_device_count() < self.world_size:
            raise _Skip(f"multi-gpu-{self.world_size}")
        self.init_comms(init_rpc=init_rpc, backend=be)
        try:
            result = func(self, *args, **kwargs)
        except BaseException:
            # A failed body may leave peers mid-collective: no barrier, just tear down.
            try:
                _dist().destroy_process_group()
            except Exception:
                pass
            if init_rpc and _dist().rpc._is_current_rpc_agent_set():
                _dist().rpc.shutdown(graceful=False)
            raise
        self.destroy_comms(destroy_rpc=init_rpc)
        return result
    return wrapper


def tp_transports():
    """torch's TensorPipe transport list for RPC options (None: the agent's default)."""
    return None


def requires_gloo():
    return unittest.skipUnless(_dist().is_gloo_available(),
                               "c10d was not compiled with the Gloo backend")


def requires_nccl():
    return unittest.skipUnless(_dist().is_nccl_available(), TEST_SKIPS["nccl"].message)


def skip_if_lt_x_gpu(x):
    """Skip (in the rank, with torch's exit code) unless at least x CUDA devices exist."""
    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if _cuda_device_count() >= x:
                return func(*args, **kwargs)
            raise _Skip(f"multi-gpu-{x}" if f"multi-gpu-{x}" in TEST_SKIPS
                        else f"Need at least {x} CUDA devices")
        return wrapper
    return decorator


def run_tests(argv=None):
    """unittest.main for a test module run as a script (works under the launcher too)."""
    unittest.main(argv=argv or sys.argv)
