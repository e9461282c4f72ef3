"""``python -m shardopt.run`` / ``shardopt-run``: a torchrun-compatible launcher.

Starts ``--nproc-per-node`` copies of a script (or ``-m module``, or an executable with
``--no-python``) with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT, OMP_NUM_THREADS=1 unless set).
Rendezvous is static: node 0's launcher serves the store at MASTER_ADDR:MASTER_PORT
(TORCHELASTIC_USE_AGENT_STORE=True, as torchrun's agent does) and ``env://`` connects to it.

If a rank fails, the others are stopped (SIGTERM to each rank's process group, SIGKILL after
``--grace-period`` seconds) and the launcher exits non-zero with a summary naming the rank
that failed FIRST and listing the others as stopped after it.  "First" is by cause, then
time: a rank killed by a signal the launcher did not send, or one that failed on its own,
comes before the ranks that raised a ``Dist*Error`` because of it; when every rank that
exited raised such an error, the ranks still running then (hung) are named.  Ranks' stderr
always passes through the launcher (unchanged) so that their last lines can be read.

SIGINT/SIGTERM/SIGHUP to the launcher stop every rank the same way.  Each rank runs in its
own session so that its children (pytest workers, ...) are stopped with it.

Multi-node (``--nnodes N``): the launchers rendezvous and heartbeat through node 0's store.
A node silent for ``--heartbeat-timeout`` seconds is lost: every surviving launcher stops its
ranks and exits non-zero naming it.  A failure on any node stops the ranks on every node.

``--max-restarts N`` restarts the whole group after a failure, up to N times (torchrun's
semantics): every node stops its ranks and starts them again with
``TORCHELASTIC_RESTART_COUNT`` set to the attempt number, so a script that resumes from its
checkpoint carries on.  Each attempt's ranks get a fresh store (``MASTER_PORT`` of attempt 0
is the one given; later attempts use a free port on node 0, published to the other nodes).
"""
from __future__ import annotations

import argparse
import collections
import os
import re
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
        help="restart the whole group up to this many times after a failure")
    add("--heartbeat-timeout", "--heartbeat_timeout", type=float, default=15.0,
        help="multi-node: seconds without a heartbeat after which a node is lost")
    add("--join-timeout", "--join_timeout", type=float, default=300.0,
        help="multi-node: seconds to wait for every node to join (each attempt)")
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
    """Copy a rank's pipe line by line to the console (optionally prefixed) and a file,
    keeping the last lines (to tell a rank that raised because of a peer)."""

    def __init__(self, src, console, prefix, logfile, lock):
        super().__init__(daemon=True)
        self.src, self.console, self.prefix, self.logfile, self.lock = (
            src, console, prefix, logfile, lock)
        self.tail = collections.deque(maxlen=20)

    def run(self):
        with self.src:
            for line in iter(self.src.readline, b""):
                self.tail.append(line)
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


# A rank's last stderr line naming one of these errors: it raised because a peer failed
# (torch's names too, for scripts that import torch under another name).
_PEER_ERROR = re.compile(rb"^(?:[\w.]+\.)?Dist(?:Backend|Timeout|Network|Store)?Error\b")


class _Rank:
    """One rank's process, the time it exited, and how it ended."""

    def __init__(self, proc, rank, local_rank):
        self.proc, self.rank, self.local_rank = proc, rank, local_rank
        self.exit_time = None     # monotonic, set by the waiter thread
        self.stopped_at = None    # when the launcher first signalled it
        self.err_pump = None
        self.done = threading.Event()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self):
        # Record the exit time at once: survivors of a failure exit within milliseconds,
        # so a polling loop could not tell which rank went first.
        self.proc.wait()
        self.exit_time = time.monotonic()
        self.done.set()

    @property
    def code(self):
        return self.proc.returncode if self.done.is_set() else None

    def killed_by_us(self):
        return self.stopped_at is not None and (self.exit_time is None or
                                                self.exit_time >= self.stopped_at)

    def peer_error(self):
        """True if its stderr ends with a Dist*Error (it raised because of another rank)."""
        if self.err_pump is None:
            return False
        self.err_pump.join(timeout=1.0)  # its pipe closes at exit; bounded anyway
        for line in reversed(list(self.err_pump.tail)):
            if line.strip():
                return bool(_PEER_ERROR.match(line.strip()))
        return False

    def describe(self):
        return f"rank {self.rank} (local_rank {self.local_rank}, pid {self.proc.pid})"


def _stop(ranks, grace):
    """SIGTERM every live rank's process group, SIGKILL whatever is left after `grace` s."""
    live = [r for r in ranks if not r.done.is_set()]
    now = time.monotonic()
    for r in live:
        r.stopped_at = r.stopped_at or now
        try:
            os.killpg(r.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(not r.done.is_set() for r in live):
        time.sleep(0.02)
    for r in live:
        if not r.done.is_set():
            try:
                os.killpg(r.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for r in ranks:
        if not r.done.wait(timeout=max(grace, 1.0)):  # unkillable (D state): report, go on
            _log(f"pid {r.proc.pid} did not exit after SIGKILL")
        # Reap whatever the rank's own children left in its process group.
        try:
            os.killpg(r.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _first_failure(ranks, still_running):
    """(culprit ranks, how each failed) in the order to report them; see the module doc."""
    failed = [r for r in ranks if r.code not in (None, 0) and r not in still_running]
    by_time = sorted(failed, key=lambda r: r.exit_time)
    signalled = [r for r in by_time if r.code < 0 and not r.killed_by_us()]
    if signalled:
        return signalled[:1], "killed by " + _describe(signalled[0].code)
    own = [r for r in by_time if not r.killed_by_us() and not r.peer_error()]
    if own:
        return own[:1], f"failed with {_describe(own[0].code)}"
    if still_running:
        return still_running, ("hung: still running after the other ranks raised, stopped "
                               "by the launcher")
    return by_time[:1], f"failed with {_describe(by_time[0].code)}"


class _Coordinator:
    """Multi-node: rendezvous, heartbeats and the group's failure flag, through node 0's
    store.  A thread beats every `interval` s and watches the other nodes; `lost` names a
    node silent for `timeout` s (node 0 too, when its store stops answering)."""

    PREFIX = "shardopt_run/"

    def __init__(self, store, node_rank, nnodes, timeout, interval=0.5):
        self.store, self.node, self.nnodes = store, node_rank, nnodes
        self.timeout, self.interval = timeout, interval
        self.lost = None
        self.attempt = 0
        self.failure = {}  # attempt -> the description a node published
        self._stop = threading.Event()
        self._thread = None

    def _k(self, name):
        return self.PREFIX + name

    def join(self, attempt, join_timeout, stop_signal):
        """Every node's launcher reaches attempt `attempt` (bounded by join_timeout)."""
        self.attempt = attempt
        self.store.set(self._k(f"hb/{self.node}"), f"{attempt}:join")
        n = self.store.add(self._k(f"join/{attempt}"), 1)
        deadline = time.monotonic() + join_timeout
        while n < self.nnodes and not stop_signal:
            if time.monotonic() > deadline:
                raise SystemExit(f"{_PROG}: error: timed out after {join_timeout:.0f} s waiting "
                                 f"for {self.nnodes} nodes to join attempt {attempt} "
                                 f"({n} joined)")
            time.sleep(0.1)
            n = self.store.add(self._k(f"join/{attempt}"), 0)
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()

    def publish(self, name, value):
        self.store.set(self._k(name), value)

    def read(self, name, timeout):
        """A value another node publishes, waiting up to `timeout` s for it."""
        deadline = time.monotonic() + timeout
        while True:
            if self.store.check([self._k(name)]):
                return self.store.get(self._k(name)).decode()
            if self.lost is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def report_failure(self, attempt, what):
        """First report wins: compare_set only writes a key that is missing."""
        key = self._k(f"fail/{attempt}")
        try:
            self.failure.setdefault(attempt, self.store.compare_set(key, "", what).decode())
        except Exception as e:  # the store is gone: the heartbeat names the lost node
            _log(f"could not publish the failure to the other nodes: {e}")

    def done_and_wait(self, attempt, poll, stop_signal):
        """This node's ranks all succeeded: wait (heartbeats running) until every node's
        did, or a failure, a lost node or a signal ends the attempt.  True when all
        succeeded."""
        self.store.add(self._k(f"done/{attempt}"), 1)
        while self.lost is None and attempt not in self.failure and not stop_signal:
            if self.store.add(self._k(f"done/{attempt}"), 0) >= self.nnodes:
                return True
            time.sleep(poll)
        return False

    def leave(self, attempt):
        """Node 0 serves the store: it waits (briefly) until the others have read the
        outcome, so they do not take its exit for a lost node."""
        try:
            n = self.store.add(self._k(f"left/{attempt}"), 1)
            deadline = time.monotonic() + min(self.timeout, 10.0)
            while self.node == 0 and n < self.nnodes and time.monotonic() < deadline \
                    and self.lost is None:
                time.sleep(0.05)
                n = self.store.add(self._k(f"left/{attempt}"), 0)
        except Exception:  # noqa: BLE001 - leaving anyway
            pass
        self.close()

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)

    def _beat(self):
        beat = 0
        last_ok = time.monotonic()
        seen = {}  # node -> (value, local time it last changed)
        while not self._stop.wait(self.interval):
            beat += 1
            now = time.monotonic()
            try:
                self.store.set(self._k(f"hb/{self.node}"), f"{self.attempt}:{beat}")
                for m in range(self.nnodes):
                    if m == self.node:
                        continue
                    v = self.store.get(self._k(f"hb/{m}"))
                    if seen.get(m, (None,))[0] != v:
                        seen[m] = (v, now)
                    elif now - seen[m][1] > self.timeout:
                        self.lost = (m, f"no heartbeat for {now - seen[m][1]:.1f} s")
                        return
                key = self._k(f"fail/{self.attempt}")
                if self.attempt not in self.failure and self.store.check([key]):
                    self.failure[self.attempt] = self.store.get(key).decode()
                last_ok = time.monotonic()
            except Exception as e:  # noqa: BLE001 - the store (node 0) does not answer
                if time.monotonic() - last_ok > self.timeout:
                    self.lost = (0, f"its store has not answered for "
                                    f"{time.monotonic() - last_ok:.1f} s ({e})")
                    return


def _start_ranks(args, cmd, base_env, nproc, world, addr, port, attempt, lock):
    ranks, pumps = [], []
    for local_rank in range(nproc):
        rank = args.node_rank * nproc + local_rank
        env = dict(base_env, RANK=str(rank), LOCAL_RANK=str(local_rank),
                   WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(nproc),
                   GROUP_RANK=str(args.node_rank), ROLE_RANK=str(rank),
                   ROLE_WORLD_SIZE=str(world), MASTER_ADDR=addr, MASTER_PORT=str(port),
                   TORCHELASTIC_RESTART_COUNT=str(attempt),
                   TORCHELASTIC_MAX_RESTARTS=str(args.max_restarts),
                   TORCHELASTIC_RUN_ID=str(args.rdzv_id))
        tee = _std_mask(args.tee, "--tee", local_rank)
        red = _std_mask(args.redirects, "--redirects", local_rank)
        files = {}
        if (tee or red) and args.log_dir is None:
            raise SystemExit(f"{_PROG}: error: --tee/--redirects need --log-dir")
        if args.log_dir is not None and (tee or red):
            d = os.path.join(args.log_dir, f"attempt_{attempt}", str(local_rank))
            os.makedirs(d, exist_ok=True)
            for bit, name in ((1, "stdout"), (2, "stderr")):
                if (tee | red) & bit:
                    files[name] = open(os.path.join(d, f"{name}.log"), "wb")
        pipe_out = args.prefix_output or "stdout" in files
        p = subprocess.Popen(cmd, env=env, start_new_session=True,
                             stdout=subprocess.PIPE if pipe_out else None,
                             stderr=subprocess.PIPE)
        r = _Rank(p, rank, local_rank)
        ranks.append(r)
        prefix = f"[rank{rank}]:".encode() if args.prefix_output else b""
        for name, stream, bit in (("stdout", p.stdout, 1), ("stderr", p.stderr, 2)):
            if stream is None:
                continue
            console = getattr(sys, name).buffer if not (red & bit) else None
            t = _Pump(stream, console, prefix, files.get(name), lock)
            t.start()
            pumps.append(t)
            if name == "stderr":
                r.err_pump = t
    return ranks, pumps


def _settle(ranks, seconds, coord, attempt):
    """After a rank raised because of a peer, give the others a moment to exit on their own
    (survivors of a failure exit within milliseconds): those still running after it are the
    hung ones.  Returns them.  Multi-node: ends early when another node reports the cause."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if coord is not None and attempt in coord.failure:
            break
        if coord is None and all(r.done.is_set() for r in ranks):
            break  # multi-node: keep waiting for the other nodes' report of the cause
        time.sleep(0.02)
    return [r for r in ranks if not r.done.is_set()]


def _run_attempt(args, ranks, coord, attempt, stop_signal):
    """Watch the ranks until they all succeed, one fails, a node is lost or a signal
    arrives.  Returns (outcome, detail): ("ok", None), ("signal", signum),
    ("lost", (node, why)), ("failed", (exit status, summary or None))."""
    nproc = len(ranks)
    while True:
        if stop_signal:
            _stop(ranks, args.grace_period)
            return "signal", stop_signal[0]
        if coord is not None and coord.lost is not None:
            _stop(ranks, args.grace_period)
            return "lost", coord.lost
        if coord is not None and attempt in coord.failure:
            _stop(ranks, args.grace_period)
            return "failed", (1, None)
        bad = [r for r in ranks if r.code not in (None, 0)]
        if bad:
            break
        if all(r.code == 0 for r in ranks):
            if coord is None or coord.done_and_wait(attempt, args.monitor_interval, stop_signal):
                return "ok", None
            continue  # another node failed or was lost: handled above
        time.sleep(args.monitor_interval)

    # A rank failed.  If every rank that exited raised because of a peer, wait a moment
    # for the rest: one that does not exit is the hung rank they timed out on.
    still = []
    if not any(r.code < 0 or not r.peer_error() for r in ranks if r.code not in (None, 0)):
        still = _settle(ranks, min(args.grace_period, 2.0), coord, attempt)
        if coord is not None and attempt in coord.failure:
            # another node saw the cause first: our ranks only raised because of it
            _stop(ranks, args.grace_period)
            return "failed", (1, None)
    _stop(ranks, args.grace_period)
    culprits, how = _first_failure(ranks, still)
    first = culprits[0]
    names = ", ".join(r.describe() for r in culprits)
    t0 = first.exit_time if first.exit_time is not None and not still else (
        min((r.exit_time for r in ranks if r.exit_time is not None), default=0.0))
    after = []
    for r in sorted(ranks, key=lambda r: (r.exit_time or 0.0)):
        if r in culprits:
            continue
        if r.killed_by_us():
            after.append(f"rank {r.rank}: {_describe(r.code)} from the launcher")
        else:
            after.append(f"rank {r.rank}: {_describe(r.code)} "
                         f"({(r.exit_time - t0) * 1000:+.0f} ms)")
    summary = (f"{names} {how}; stopped after it: " + (", ".join(after) or "none") +
               f" ({nproc} local ranks, node {args.node_rank}, attempt {attempt})")
    code = first.code if first.code is not None else 1
    status = code if code > 0 else (128 - code if not still else 1)
    if coord is not None:
        coord.report_failure(attempt, f"node {args.node_rank}: {summary}")
    return "failed", (status, summary)


def _worker_store(args, nnodes, addr, port):
    """Serve a store for the ranks (node 0): port 0 picks a free one."""
    try:
        from shardopt._C import TCPStore  # noqa: PLC0415
    except ImportError:
        return None
    from datetime import timedelta  # noqa: PLC0415
    try:
        return TCPStore("" if nnodes > 1 else addr, port, None, True,
                        timeout=timedelta(seconds=60), wait_for_workers=False)
    except RuntimeError as e:
        raise SystemExit(f"{_PROG}: error: cannot serve the store at {addr}:{port}: {e}")


def run(args):
    nproc = _nproc(args.nproc_per_node)
    nnodes = _nnodes(args.nnodes)
    if not 0 <= args.node_rank < nnodes:
        raise SystemExit(f"{_PROG}: error: --node-rank must be in [0, {nnodes}), "
                         f"got {args.node_rank}")
    if args.max_restarts < 0:
        raise SystemExit(f"{_PROG}: error: --max-restarts must be >= 0, got {args.max_restarts}")
    if not args.heartbeat_timeout > 0:
        raise SystemExit(f"{_PROG}: error: --heartbeat-timeout must be > 0")
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
        agent_store = _worker_store(args, nnodes, addr, port)
        if agent_store is not None:
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
    stop_signal = []

    def on_signal(signum, frame):
        stop_signal.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    coord, ranks, pumps, attempt_store = None, [], [], None
    try:
        if nnodes > 1:
            from datetime import timedelta  # noqa: PLC0415

            from shardopt._C import DistStoreError, TCPStore  # noqa: PLC0415
            try:
                client = TCPStore(addr, port, None, False,
                                  timeout=timedelta(seconds=args.join_timeout),
                                  wait_for_workers=False)
            except DistStoreError as e:
                raise SystemExit(f"{_PROG}: error: cannot reach node 0's store at "
                                 f"{addr}:{port}: {e}") from None
            # requests, unlike the first connection, must notice a lost node quickly
            client.set_timeout(timedelta(seconds=min(args.heartbeat_timeout / 2, 5.0)))
            coord = _Coordinator(client, args.node_rank, nnodes, args.heartbeat_timeout)
        attempt = 0
        while True:
            if coord is not None:
                coord.join(attempt, args.join_timeout, stop_signal)
            ports = port
            if attempt > 0:
                # a fresh store per attempt: the ranks' keys of the failed one are not seen
                if args.node_rank == 0:
                    attempt_store = _worker_store(args, nnodes, addr, 0)
                    ports = attempt_store.port if attempt_store is not None else port
                    if coord is not None:
                        coord.publish(f"port/{attempt}", str(ports))
                else:
                    got = coord.read(f"port/{attempt}", args.join_timeout)
                    if got is None:
                        raise SystemExit(f"{_PROG}: error: node 0 did not publish the store "
                                         f"of attempt {attempt}")
                    ports = int(got)
            ranks, pumps = _start_ranks(args, cmd, base_env, nproc, world, addr, ports,
                                        attempt, lock)
            outcome, detail = _run_attempt(args, ranks, coord, attempt, stop_signal)
            for t in pumps:
                t.join(timeout=5)
            if outcome == "ok":
                if coord is not None:
                    coord.leave(attempt)
                return 0
            if outcome == "signal":
                sig = signal.Signals(detail).name
                _log(f"received {sig}; stopped all {nproc} local ranks")
                return 128 + detail
            if outcome == "lost":
                node, why = detail
                _log(f"node {node} lost ({why}); stopped all {nproc} local ranks "
                     f"of node {args.node_rank}")
                return 1
            status, summary = detail
            if summary is not None:
                _log(summary)
            elif coord is not None:
                _log(f"the group failed on another node; stopped all {nproc} local ranks "
                     f"({coord.failure.get(attempt)})")
            if args.log_dir is not None:
                _log(f"logs: {os.path.join(args.log_dir, f'attempt_{attempt}')}")
            if attempt < args.max_restarts:
                attempt += 1
                _log(f"restarting the group: attempt {attempt} of {args.max_restarts} restarts")
                continue
            if coord is not None:
                coord.leave(attempt)
            return status
    finally:
        if any(not r.done.is_set() for r in ranks):
            _stop(ranks, args.grace_period)
        if coord is not None:
            coord.close()
        del agent_store, attempt_store
        for s, h in old.items():
            signal.signal(s, h)


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
