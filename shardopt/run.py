"""``python -m shardopt.run`` / ``shardopt-run``: a torchrun-compatible launcher.

Starts ``--nproc-per-node`` copies of a script (or ``-m module``, or an executable with
``--no-python``) with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT, OMP_NUM_THREADS=1 unless set).
Rendezvous is static: node 0's launcher serves the store at MASTER_ADDR:MASTER_PORT
(TORCHELASTIC_USE_AGENT_STORE=True, as torchrun's agent does) and ``env://`` connects to it.

If a rank fails, the others are stopped (SIGTERM to each rank's process group, SIGKILL after
``--grace-period`` seconds) and the launcher exits non-zero with a summary naming the rank
and its exit code or signal.  SIGINT/SIGTERM/SIGHUP to the launcher stop every rank the
same way.  Each rank runs in its own session so that its children (pytest workers, ...)
are stopped with it.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

__all__ = ["main", "get_args_parser"]

_PROG = "shardopt.run"


def _log(msg):
    print(f"[{_PROG}] {msg}", file=sys.stderr, flush=True)


def get_args_parser():
    p = argparse.ArgumentParser(
        prog=_PROG, description="Launch a multi-process (torchrun-style) distributed job.")
    add = p.add_argument
    add("--nnodes", type=str, default="1", help="number of nodes, N or MIN:MAX (static: MAX)")
    add("--nproc-per-node", "--nproc_per_node", type=str, default="1",
        help="processes per node: an int, or 'auto'/'cpu'/'gpu'")
    add("--node-rank", "--node_rank", type=int, default=0, help="rank of this node")
    add("--master-addr", "--master_addr", type=str, default=None,
        help="address of the rank-0 node (default 127.0.0.1)")
    add("--master-port", "--master_port", type=int, default=None,
        help="port of the store on the rank-0 node (default 29500; a free one with --standalone)")
    add("--rdzv-endpoint", "--rdzv_endpoint", type=str, default="",
        help="host[:port] of the rank-0 node (an alternative to --master-addr/--master-port)")
    add("--rdzv-backend", "--rdzv_backend", type=str, default="static", help="accepted, ignored")
    add("--rdzv-id", "--rdzv_id", type=str, default="none", help="accepted, ignored")
    add("--standalone", action="store_true",
        help="single node: localhost and a free port")
    add("--max-restarts", "--max_restarts", type=int, default=0,
        help="only 0 is supported (failures are not retried)")
    add("--monitor-interval", "--monitor_interval", type=float, default=0.1,
        help="seconds between checks of the ranks")
    add("--start-method", "--start_method", type=str, default="spawn", help="accepted, ignored")
    add("--grace-period", "--grace_period", type=float, default=5.0,
        help="seconds between SIGTERM and SIGKILL when stopping ranks")
    add("-m", "--module", action="store_true",
        help="run the target as a module, like python -m")
    add("--no-python", "--no_python", action="store_true",
        help="run the target directly as an executable, not through python")
    add("--log-dir", "--log_dir", type=str, default=None,
        help="write each rank's output to <log-dir>/attempt_0/<local_rank>/{stdout,stderr}.log")
    add("-r", "--redirects", type=str, default="0",
        help="0 none, 1 stdout, 2 stderr, 3 both (or 'rank:N,...'): to log files only")
    add("-t", "--tee", type=str, default="0",
        help="0 none, 1 stdout, 2 stderr, 3 both: to log files and the console")
    add("--prefix-output", "--prefix_output", action="store_true",
        help="prefix every output line with [rankN]:")
    add("training_script", type=str, help="script, module (-m) or executable (--no-python)")
    add("training_script_args", nargs=argparse.REMAINDER)
    return p


def _std_mask(value, argname, local_rank):
    """torchrun's Std: '0'..'3' for every rank, or 'local_rank:val,...'."""
    value = str(value)
    if ":" in value:
        table = {}
        for item in value.split(","):
            r, _, v = item.partition(":")
            table[int(r)] = int(v)
        m = table.get(local_rank, 0)
    else:
        m = int(value)
    if m not in (0, 1, 2, 3):
        raise SystemExit(f"{_PROG}: error: {argname} must be 0..3, got {value!r}")
    return m


def _nproc(value):
    if value in ("auto", "cpu", "gpu"):
        if value != "cpu":
            try:
                from shardopt import cuda  # noqa: PLC0415

                n = cuda.device_count()
                if n > 0:
                    return n
            except Exception:  # no GPU support built or no device: fall back
                pass
            if value == "gpu":
                raise SystemExit(f"{_PROG}: error: --nproc-per-node gpu: no CUDA device")
        return os.cpu_count() or 1
    try:
        n = int(value)
    except ValueError:
        raise SystemExit(f"{_PROG}: error: --nproc-per-node must be an int or auto/cpu/gpu, "
                         f"got {value!r}") from None
    if n < 1:
        raise SystemExit(f"{_PROG}: error: --nproc-per-node must be >= 1, got {n}")
    return n


def _nnodes(value):
    lo, _, hi = value.partition(":")
    try:
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise SystemExit(f"{_PROG}: error: --nnodes must be N or MIN:MAX, got {value!r}") from None
    if lo_i < 1 or hi_i < lo_i:
        raise SystemExit(f"{_PROG}: error: invalid --nnodes {value!r}")
    if lo_i != hi_i:
        _log(f"elastic --nnodes {value} is not supported; using a static {hi_i} nodes")
    return hi_i


def _describe(code):
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


class _Pump(threading.Thread):
    """Copy a rank's pipe line by line to the console (optionally prefixed) and a file."""

    def __init__(self, src, console, prefix, logfile, lock):
        super().__init__(daemon=True)
        self.src, self.console, self.prefix, self.logfile, self.lock = (
            src, console, prefix, logfile, lock)

    def run(self):
        with self.src:
            for line in iter(self.src.readline, b""):
                if self.logfile is not None:
                    self.logfile.write(line)
                    self.logfile.flush()
                if self.console is not None:
                    with self.lock:
                        self.console.write(self.prefix + line)
                        self.console.flush()
        if self.logfile is not None:
            self.logfile.close()


def _build_cmd(args):
    if args.no_python and args.module:
        raise SystemExit(f"{_PROG}: error: --no-python and -m cannot be used together")
    if args.no_python:
        return [args.training_script, *args.training_script_args]
    if args.module:
        return [sys.executable, "-u", "-m", args.training_script, *args.training_script_args]
    return [sys.executable, "-u", args.training_script, *args.training_script_args]


def _stop(procs, grace):
    """SIGTERM every live rank's process group, SIGKILL whatever is left after `grace` s."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.poll() is None for p in live):
        time.sleep(0.02)
    for p in live:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=max(grace, 1.0))
        except subprocess.TimeoutExpired:  # unkillable (D state): report, do not hang
            _log(f"pid {p.pid} did not exit after SIGKILL")
        # Reap whatever the rank's own children left in its process group.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def run(args):
    nproc = _nproc(args.nproc_per_node)
    nnodes = _nnodes(args.nnodes)
    if not 0 <= args.node_rank < nnodes:
        raise SystemExit(f"{_PROG}: error: --node-rank must be in [0, {nnodes}), "
                         f"got {args.node_rank}")
    if args.max_restarts != 0:
        _log("--max-restarts is not supported; failures are not retried")
    addr, port = args.master_addr, args.master_port
    if args.rdzv_endpoint:
        host, _, p = args.rdzv_endpoint.rpartition(":") if ":" in args.rdzv_endpoint else (
            args.rdzv_endpoint, "", "")
        addr = addr or host
        if p:
            try:
                port = port or int(p)
            except ValueError:
                raise SystemExit(f"{_PROG}: error: --rdzv-endpoint must be host:port, "
                                 f"got {args.rdzv_endpoint!r}") from None
    if args.standalone:
        if nnodes != 1:
            raise SystemExit(f"{_PROG}: error: --standalone needs --nnodes 1")
        addr = addr or "127.0.0.1"
        port = port or 0
    addr = addr or "127.0.0.1"
    port = 29500 if port is None else port
    world = nnodes * nproc
    cmd = _build_cmd(args)

    base_env = dict(os.environ)
    # Like torchrun's agent, node 0's launcher serves the store at MASTER_PORT, so it
    # outlives any single rank and processes that init several times in a row (test
    # suites) never race for the port; env:// then connects as a client.
    agent_store = None
    if args.node_rank == 0:
        try:
            from shardopt._C import TCPStore  # noqa: PLC0415
        except ImportError:
            TCPStore = None
        if TCPStore is not None:
            from datetime import timedelta  # noqa: PLC0415
            try:
                agent_store = TCPStore("" if nnodes > 1 else addr, port, world, True,
                                       timeout=timedelta(seconds=60), wait_for_workers=False)
            except RuntimeError as e:
                raise SystemExit(f"{_PROG}: error: cannot serve the store at {addr}:{port}: {e}")
            port = agent_store.port
            base_env["TORCHELASTIC_USE_AGENT_STORE"] = "True"
            # tells env:// that the store at MASTER_PORT is a shardopt one (under a real
            # torchrun it is torch's, see distributed_c10d._env_store)
            base_env["SHARDOPT_AGENT_STORE"] = "1"
    elif port == 0:
        raise SystemExit(f"{_PROG}: error: nodes other than 0 need an explicit master port")
    if nnodes > 1:
        base_env["TORCHELASTIC_USE_AGENT_STORE"] = "True"
        base_env["SHARDOPT_AGENT_STORE"] = "1"
    if "OMP_NUM_THREADS" not in base_env:
        base_env["OMP_NUM_THREADS"] = "1"
    lock = threading.Lock()
    procs, pumps = [], []
    stop_signal = []

    def on_signal(signum, frame):
        stop_signal.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for local_rank in range(nproc):
            rank = args.node_rank * nproc + local_rank
            env = dict(base_env, RANK=str(rank), LOCAL_RANK=str(local_rank),
                       WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(nproc),
                       GROUP_RANK=str(args.node_rank), ROLE_RANK=str(rank),
                       ROLE_WORLD_SIZE=str(world), MASTER_ADDR=addr, MASTER_PORT=str(port),
                       TORCHELASTIC_RESTART_COUNT="0", TORCHELASTIC_MAX_RESTARTS="0",
                       TORCHELASTIC_RUN_ID=str(args.rdzv_id))
            tee = _std_mask(args.tee, "--tee", local_rank)
            red = _std_mask(args.redirects, "--redirects", local_rank)
            files = {}
            if (tee or red) and args.log_dir is None:
                raise SystemExit(f"{_PROG}: error: --tee/--redirects need --log-dir")
            if args.log_dir is not None and (tee or red):
                d = os.path.join(args.log_dir, "attempt_0", str(local_rank))
                os.makedirs(d, exist_ok=True)
                for bit, name in ((1, "stdout"), (2, "stderr")):
                    if (tee | red) & bit:
                        files[name] = open(os.path.join(d, f"{name}.log"), "wb")
            pipe_out = args.prefix_output or "stdout" in files
            pipe_err = args.prefix_output or "stderr" in files
            p = subprocess.Popen(cmd, env=env, start_new_session=True,
                                 stdout=subprocess.PIPE if pipe_out else None,
                                 stderr=subprocess.PIPE if pipe_err else None)
            p.rank, p.local_rank = rank, local_rank
            procs.append(p)
            prefix = f"[rank{rank}]:".encode() if args.prefix_output else b""
            for name, stream, bit in (("stdout", p.stdout, 1), ("stderr", p.stderr, 2)):
                if stream is None:
                    continue
                console = getattr(sys, name).buffer if not (red & bit) else None
                t = _Pump(stream, console, prefix, files.get(name), lock)
                t.start()
                pumps.append(t)

        failed = None
        while not stop_signal:
            codes = [p.poll() for p in procs]
            bad = [p for p, c in zip(procs, codes) if c not in (None, 0)]
            if bad:
                failed = bad[0]
                break
            if all(c == 0 for c in codes):
                break
            time.sleep(args.monitor_interval)

        if stop_signal or failed is not None:
            _stop(procs, args.grace_period)
        for t in pumps:
            t.join(timeout=5)

        if stop_signal:
            sig = signal.Signals(stop_signal[0]).name
            _log(f"received {sig}; stopped all {nproc} local ranks")
            return 128 + stop_signal[0]
        if failed is not None:
            code = failed.returncode
            others = ", ".join(f"rank {p.rank}: {_describe(p.returncode)}"
                               for p in procs if p is not failed and p.returncode is not None)
            _log(f"rank {failed.rank} (local_rank {failed.local_rank}, pid {failed.pid}) failed "
                 f"with {_describe(code)}; the other ranks were stopped ({others})")
            if args.log_dir is not None:
                _log(f"logs: {os.path.join(args.log_dir, 'attempt_0')}")
            return code if code > 0 else 128 - code
        return 0
    finally:
        if any(p.poll() is None for p in procs):
            _stop(procs, args.grace_period)
        del agent_store
        for s, h in old.items():
            signal.signal(s, h)


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
