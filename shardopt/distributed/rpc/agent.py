"""The RPC agent: one per worker process, a TCP listener plus a request pool.

Wire format: every message is one frame, an 8-byte big-endian length followed by a pickle
(frames above SHARDOPT_RPC_MAX_FRAME bytes, default 2 GiB, are refused and close the
connection).  Each worker opens ONE connection to each peer it calls, on first use, and
sends its requests there; a reader thread per connection resolves the replies.  Incoming
connections get a reader thread each: requests that run user code go to a pool of
``num_worker_threads`` threads, bookkeeping messages (RRef creation, reference counts) are
handled inline so that they stay ordered with the requests of the same connection.

Requests: ("call", id, func, args, kwargs), ("remote", id, rref_id, func, args, kwargs),
("fetch", id, rref_id, timeout), ("incref", id, rref_id), ("decref", id, rref_id),
("ping", id).  Replies: (id, ok, payload) where a failed payload is (exception type,
message).  Unpickling runs arbitrary code: like torch's, this RPC trusts its peers.

Failure bounds: every pending call has a deadline kept by one watchdog thread; a reader
that sees its connection close fails every call pending on that peer at once, so a dead
worker never leaves a caller blocked.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import os
import pickle
import socket
import struct
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

from ...futures import Future

_HDR = struct.Struct("!Q")
_MAX_FRAME = int(os.environ.get("SHARDOPT_RPC_MAX_FRAME", str(2 ** 31)))

_tls = threading.local()  # .dest: the worker id a pickle is being written for


class WorkerInfo:
    """A worker's name and id (its rank) (torch.distributed.rpc.WorkerInfo)."""

    __slots__ = ("name", "id")

    def __init__(self, name: str, id: int) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "id", id)

    def __setattr__(self, key, value):
        raise AttributeError(f"WorkerInfo.{key} is read-only")

    def __eq__(self, other) -> bool:
        return isinstance(other, WorkerInfo) and (self.name, self.id) == (other.name, other.id)

    def __hash__(self) -> int:
        return hash((self.name, self.id))

    def __repr__(self) -> str:
        return f"WorkerInfo(id={self.id}, name={self.name})"

    def __reduce__(self):
        return (WorkerInfo, (self.name, self.id))


def _timeout_error(seconds: float) -> RuntimeError:
    return RuntimeError(f"RPC ran for more than set timeout ({int(seconds * 1000)} ms) and "
                        f"will now be marked with an error")


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)  # handed to pickle.loads as is: no second copy of large frames
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("connection closed by peer")
        got += k
    return buf


def _recv_frame(sock: socket.socket) -> bytearray:
    (n,) = _HDR.unpack(bytes(_recv_exact(sock, _HDR.size)))
    if n > _MAX_FRAME:
        raise ConnectionError(f"RPC frame of {n} bytes exceeds the limit of {_MAX_FRAME} "
                              f"(SHARDOPT_RPC_MAX_FRAME)")
    return _recv_exact(sock, n)


class _Conn:
    """A socket with a send lock (frames from several threads never interleave)."""

    def __init__(self, sock: socket.socket, peer: int, who: str = "") -> None:
        self.sock = sock
        self.peer = peer
        self.who = who or f"worker {peer}"  # the WorkerInfo, for errors that name the peer
        self.lock = threading.Lock()
        self.dead: Optional[BaseException] = None

    def send(self, data: bytes) -> None:
        if len(data) > _MAX_FRAME:
            raise ValueError(f"RPC message of {len(data)} bytes exceeds the limit of "
                             f"{_MAX_FRAME} (SHARDOPT_RPC_MAX_FRAME)")
        with self.lock:
            if self.dead is not None:
                raise RuntimeError(f"RPC to {self.who} failed: the connection was lost "
                                   f"({self.dead}); the worker may have exited")
            self.sock.sendall(_HDR.pack(len(data)) + data if len(data) < 65536
                              else _HDR.pack(len(data)))
            if len(data) >= 65536:
                self.sock.sendall(data)

    def close(self, why: BaseException) -> None:
        if self.dead is None:
            self.dead = why
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class _OwnerEntry:
    """An owned RRef value: its (possibly pending) value and the live references to it."""

    __slots__ = ("fut", "count")

    def __init__(self, fut: Future, count: int) -> None:
        self.fut = fut
        self.count = count


def _dumps_for(dest: int, obj) -> bytes:
    prev = getattr(_tls, "dest", None)
    _tls.dest = dest
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        _tls.dest = prev


def _error_payload(e: BaseException, where: WorkerInfo) -> Tuple[Any, str]:
    msg = (f"On {where}:\n{e!r}\n"
           + "".join(traceback.format_exception(type(e), e, e.__traceback__)))
    etype = type(e)
    try:
        pickle.loads(pickle.dumps(etype))
    except Exception:
        etype = RuntimeError
    return etype, msg


def _rebuild_error(payload) -> BaseException:
    etype, msg = payload
    try:
        exc = etype(msg)
        if isinstance(exc, BaseException):
            return exc
    except Exception:
        pass
    return RuntimeError(msg)


class Agent:
    """The current worker's RPC endpoint (torch's RpcAgent, TensorPipe flavour)."""

    def __init__(self, name: str, rank: int, world_size: int, store, options) -> None:
        self.rank = rank
        self.world_size = world_size
        self.store = store
        self.rpc_timeout = options.rpc_timeout
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._pending: Dict[int, Tuple[Future, int]] = {}   # req id -> (future, peer)
        self._deadlines: List[Tuple[float, int, float]] = []  # heap (deadline, id, seconds)
        self._cond = threading.Condition(self._lock)
        self._out: Dict[int, _Conn] = {}
        self._in: List[_Conn] = []
        self._owned: Dict[Tuple[int, int], _OwnerEntry] = {}
        self._decrefs: collections.deque = collections.deque()
        self._decref_futs: List[Future] = []
        self._closing = False
        self._ready = threading.Event()  # set once the rendezvous filled in the worker infos
        self._pool = ThreadPoolExecutor(max_workers=options.num_worker_threads,
                                        thread_name_prefix=f"rpc{rank}")
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        host = _advertised_host()  # loopback for single-node jobs: nothing else can reach it
        self._listener.bind((host, 0))
        self._listener.listen(max(16, world_size))
        port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"rpc{rank}-accept"),
                         threading.Thread(target=self._watchdog, daemon=True,
                                          name=f"rpc{rank}-watchdog")]
        for t in self._threads:
            t.start()
        # Rendezvous: publish (name, host, port), read everyone's.
        try:
            store.set(f"worker/{rank}", pickle.dumps((name, host, port)))
            store.wait([f"worker/{r}" for r in range(world_size)])
        except BaseException:
            self.shutdown(wait=False)  # a worker that never joined: leave nothing running
            raise
        self._addrs: Dict[int, Tuple[str, int]] = {}
        infos = []
        by_name: Dict[str, int] = {}
        for r in range(world_size):
            n, h, p = pickle.loads(store.get(f"worker/{r}"))
            if n in by_name:
                self.shutdown()
                raise RuntimeError(f"RPC worker name {n} is not unique. Workers "
                                   f"{by_name[n]} and {r} share the same name")
            by_name[n] = r
            infos.append(WorkerInfo(n, r))
            self._addrs[r] = (h, p)
        self._infos = infos
        self._by_name = by_name
        self._ready.set()
        self._decref_thread = threading.Thread(target=self._decref_loop, daemon=True,
                                               name=f"rpc{rank}-decref")
        self._decref_thread.start()

    # -- worker infos ----------------------------------------------------------------------
    def get_worker_info(self, worker_name=None) -> WorkerInfo:
        if worker_name is None:
            return self._infos[self.rank]
        if isinstance(worker_name, int) and not isinstance(worker_name, bool):
            if 0 <= worker_name < self.world_size:
                return self._infos[worker_name]
            raise RuntimeError(f"Unknown destination worker id {worker_name}")
        if not isinstance(worker_name, str):
            raise ValueError(f"Cannot get WorkerInfo from name {worker_name}")
        r = self._by_name.get(worker_name)
        if r is None:
            raise RuntimeError(f"Unknown destination worker {worker_name}")
        return self._infos[r]

    def get_worker_infos(self) -> List[WorkerInfo]:
        return list(self._infos)

    def _resolve_timeout(self, timeout) -> float:
        if timeout is None or timeout < 0:
            return self.rpc_timeout
        return float(timeout)

    # -- sending ------------------------------------------------------------------------
    def _conn_to(self, peer: int) -> _Conn:
        with self._lock:
            c = self._out.get(peer)
            if c is not None and c.dead is None:
                return c
            if self._closing:
                raise RuntimeError("RPC agent is shutting down")
        host, port = self._addrs[peer]
        timeout = self.rpc_timeout or None
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise RuntimeError(f"RPC could not connect to {self._infos[peer]} at "
                               f"{host}:{port}: {e}") from None
        sock.settimeout(None)
        _tune(sock)
        conn = _Conn(sock, peer, str(self._infos[peer]))
        conn.send(pickle.dumps(("hello", self.rank)))
        with self._lock:
            old = self._out.get(peer)
            if old is not None and old.dead is None:  # another thread won the race
                conn.close(RuntimeError("duplicate"))
                return old
            self._out[peer] = conn
        threading.Thread(target=self._reply_loop, args=(conn,), daemon=True,
                         name=f"rpc{self.rank}-to{peer}").start()
        return conn

    def request(self, peer: int, msg: tuple, timeout: float) -> Future:
        """Send (kind, <id>, *rest) to `peer`; a future for its reply."""
        fut: Future = Future()
        fut._executor = self._pool
        rid = next(self._ids)
        with self._lock:
            if self._closing and msg[0] not in ("decref",):
                raise RuntimeError("RPC agent is shutting down")
            self._pending[rid] = (fut, peer)
            if timeout > 0:
                heapq.heappush(self._deadlines, (time.monotonic() + timeout, rid, timeout))
                self._cond.notify_all()
        try:
            data = _dumps_for(peer, (msg[0], rid) + tuple(msg[1:]))
            self._conn_to(peer).send(data)
        except BaseException as e:
            with self._lock:
                self._pending.pop(rid, None)
            if isinstance(e, (OSError, ConnectionError)):
                e = RuntimeError(f"RPC to {self._infos[peer]} failed: {e}")
            fut._try_complete(None, e)
        return fut

    def _fail_peer(self, peer: int, why: BaseException) -> None:
        with self._lock:
            failed = [(rid, f) for rid, (f, p) in self._pending.items() if p == peer]
            for rid, _ in failed:
                del self._pending[rid]
        err = RuntimeError(f"RPC to {self._infos[peer]} failed: the connection was lost "
                           f"({why}); the worker may have exited")
        for _, f in failed:
            f._try_complete(None, err)

    def _reply_loop(self, conn: _Conn) -> None:
        try:
            while True:
                data = _recv_frame(conn.sock)
                try:
                    rid, ok, payload = pickle.loads(data)
                    if not ok:
                        payload = _rebuild_error(payload)
                except BaseException as e:  # noqa: BLE001 - a bad reply fails its call
                    rid, ok, payload = _peek_id(data, False), False, RuntimeError(
                        f"could not unpickle the RPC reply from {self._infos[conn.peer]}: "
                        f"{e!r}")
                    if rid is None:
                        raise
                with self._lock:
                    entry = self._pending.pop(rid, None)
                if entry is not None:
                    entry[0]._try_complete(payload if ok else None, None if ok else payload)
        except BaseException as e:  # noqa: BLE001
            conn.close(e)
            self._fail_peer(conn.peer, e)

    def _watchdog(self) -> None:
        with self._lock:
            while not self._closing:
                now = time.monotonic()
                expired = []
                while self._deadlines and self._deadlines[0][0] <= now:
                    _, rid, secs = heapq.heappop(self._deadlines)
                    entry = self._pending.pop(rid, None)
                    if entry is not None:
                        expired.append((entry[0], secs))
                if expired:
                    self._lock.release()
                    try:
                        for f, secs in expired:
                            f._try_complete(None, _timeout_error(secs))
                    finally:
                        self._lock.acquire()
                    continue
                wait = self._deadlines[0][0] - now if self._deadlines else None
                self._cond.wait(wait)

    # -- serving ------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            _tune(sock)
            threading.Thread(target=self._serve_conn, args=(sock,), daemon=True,
                             name=f"rpc{self.rank}-serve").start()

    def _serve_conn(self, sock: socket.socket) -> None:
        conn = None
        try:
            # A connection that never says hello must not hold a thread forever.
            sock.settimeout(self.rpc_timeout or 60.0)
            kind, peer = pickle.loads(_recv_frame(sock))
            sock.settimeout(None)
            if kind != "hello" or not (0 <= peer < self.world_size):
                raise ConnectionError(f"bad RPC handshake {kind!r}")
            conn = _Conn(sock, peer)
            # A faster peer may call before our own rendezvous finished reading the infos.
            while not self._ready.wait(0.1):
                if self._closing:
                    raise ConnectionError("shutting down")
            conn.who = str(self._infos[peer])
            with self._lock:
                if self._closing:
                    raise ConnectionError("shutting down")
                self._in.append(conn)
            while True:
                data = _recv_frame(sock)
                try:
                    msg = pickle.loads(data)
                except BaseException as e:  # noqa: BLE001
                    # The id is the second field; recover it to fail just that call.
                    rid = _peek_id(data, True)
                    if rid is None:
                        raise
                    self._reply(conn, rid, False, _error_payload(e, self._infos[self.rank]))
                    continue
                self._dispatch(conn, msg)
        except BaseException as e:  # noqa: BLE001 - a peer going away ends its connection
            if os.environ.get("SHARDOPT_RPC_DEBUG"):
                traceback.print_exc()
            if conn is not None:
                conn.close(e)
            else:
                try:
                    sock.close()
                except OSError:
                    pass

    def _reply(self, conn: _Conn, rid: int, ok: bool, payload) -> None:
        try:
            data = _dumps_for(conn.peer, (rid, ok, payload))
        except BaseException as e:  # noqa: BLE001 - an unpicklable result fails the call
            data = pickle.dumps((rid, False, _error_payload(
                RuntimeError(f"could not pickle the RPC result: {e!r}"),
                self._infos[self.rank])))
        if len(data) > _MAX_FRAME:
            data = pickle.dumps((rid, False, (RuntimeError, (
                f"On {self._infos[self.rank]}: the RPC result pickles to {len(data)} bytes, "
                f"over the frame limit of {_MAX_FRAME} (SHARDOPT_RPC_MAX_FRAME)"))))
        try:
            conn.send(data)
        except (OSError, RuntimeError, ValueError):
            pass  # the caller is gone: its reader fails its calls

    def _dispatch(self, conn: _Conn, msg: tuple) -> None:
        kind, rid = msg[0], msg[1]
        me = self._infos[self.rank]
        if kind == "call":
            _, _, func, args, kwargs = msg

            def run():
                try:
                    self._reply(conn, rid, True, func(*args, **kwargs))
                except BaseException as e:  # noqa: BLE001
                    self._reply(conn, rid, False, _error_payload(e, me))
            self._submit(run, conn, rid)
        elif kind == "remote":
            _, _, rref_id, func, args, kwargs = msg
            entry = self.own_pending(rref_id)

            def run_remote():
                try:
                    value, exc = func(*args, **kwargs), None
                except BaseException as e:  # noqa: BLE001 - to_here() raises it
                    payload = _error_payload(e, me)
                    value, exc = None, _rebuild_error(payload)
                    exc._rpc_payload = payload  # fetches forward it unwrapped
                # Acknowledge before publishing the value: a fetch waiting on it replies on
                # the same connection, so the caller sees the creation confirmed first.
                self._reply(conn, rid, True, None)
                entry.fut._try_complete(value, exc)
            self._submit(run_remote, conn, rid)
        elif kind == "fetch":
            _, _, rref_id, timeout = msg

            def fetch():
                try:
                    self._reply(conn, rid, True, self.owner_value(rref_id, timeout))
                except BaseException as e:  # noqa: BLE001
                    self._reply(conn, rid, False,
                                getattr(e, "_rpc_payload", None) or _error_payload(e, me))
            self._submit(fetch, conn, rid)
        elif kind == "incref":
            try:
                self.owner_incref(msg[2])
                self._reply(conn, rid, True, None)
            except BaseException as e:  # noqa: BLE001
                self._reply(conn, rid, False, _error_payload(e, me))
        elif kind == "decref":
            self.owner_decref(msg[2])
            self._reply(conn, rid, True, None)
        elif kind == "ping":
            self._reply(conn, rid, True, None)
        else:
            self._reply(conn, rid, False, (RuntimeError, f"unknown RPC message {kind!r}"))

    def _submit(self, fn, conn: _Conn, rid: int) -> None:
        try:
            self._pool.submit(fn)
        except RuntimeError:  # pool shut down
            self._reply(conn, rid, False, (RuntimeError, "RPC agent is shutting down"))

    # -- owned values (RRefs) -------------------------------------------------------------
    def new_rref_id(self) -> Tuple[int, int]:
        return (self.rank, next(self._ids))

    def own_value(self, rref_id, value) -> None:
        fut: Future = Future()
        fut.set_result(value)
        with self._lock:
            self._owned[rref_id] = _OwnerEntry(fut, 1)

    def own_pending(self, rref_id) -> _OwnerEntry:
        entry = _OwnerEntry(Future(), 1)
        with self._lock:
            self._owned[rref_id] = entry
        return entry

    def owner_entry(self, rref_id) -> _OwnerEntry:
        with self._lock:
            entry = self._owned.get(rref_id)
        if entry is None:
            raise RuntimeError(f"RRef {rref_id} does not exist on its owner "
                               f"{self._infos[self.rank]} (it was deleted)")
        return entry

    def owner_value(self, rref_id, timeout: float):
        entry = self.owner_entry(rref_id)
        t = self._resolve_timeout(timeout)
        if not entry.fut._wait_done(t if t > 0 else None):
            raise _timeout_error(t)
        return entry.fut.value()

    def owner_incref(self, rref_id) -> None:
        with self._lock:
            entry = self._owned.get(rref_id)
            if entry is None:
                raise RuntimeError(f"RRef {rref_id} does not exist on its owner "
                                   f"{self._infos[self.rank]} (it was deleted)")
            entry.count += 1

    def owner_decref(self, rref_id) -> None:
        with self._lock:
            entry = self._owned.get(rref_id)
            if entry is not None:
                entry.count -= 1
                if entry.count <= 0:
                    del self._owned[rref_id]

    def num_owned(self) -> int:
        with self._lock:
            return len(self._owned)

    def release(self, owner: int, rref_id) -> None:
        """Called from RRef.__del__ (any thread, maybe inside the GC): queue the decref."""
        self._decrefs.append((owner, rref_id))
        # Never block in a finalizer: if the lock is busy the loop's 0.5 s poll picks it up.
        if self._lock.acquire(blocking=False):
            try:
                self._cond.notify_all()
            finally:
                self._lock.release()

    def _decref_loop(self) -> None:
        while True:
            with self._lock:
                while not self._decrefs and not self._closing:
                    self._cond.wait(0.5)
                if not self._decrefs and self._closing:
                    return
            while self._decrefs:
                # Leave the entry queued until its future is registered: flush_decrefs waits
                # on the queue, then on the futures, and must never see neither (this loop is
                # the only consumer; release() only appends on the right).
                owner, rref_id = self._decrefs[0]
                try:
                    if owner == self.rank:
                        self.owner_decref(rref_id)
                    else:
                        fut = self.request(owner, ("decref", rref_id), self.rpc_timeout)
                        with self._lock:
                            self._decref_futs = [f for f in self._decref_futs if not f.done()]
                            self._decref_futs.append(fut)
                finally:
                    self._decrefs.popleft()

    def flush_decrefs(self, timeout: float) -> None:
        """Wait until every queued RRef delete has reached its owner (or failed)."""
        deadline = time.monotonic() + (timeout if timeout > 0 else 1e9)
        while self._decrefs and time.monotonic() < deadline:
            with self._lock:
                self._cond.notify_all()
            time.sleep(0.005)
        with self._lock:
            futs = list(self._decref_futs)
        for f in futs:
            f._wait_done(max(0.0, deadline - time.monotonic()))

    def wait_pending(self, timeout: float) -> None:
        """Wait for this worker's outstanding calls (each is bounded by its own timeout)."""
        deadline = time.monotonic() + (timeout if timeout > 0 else 1e9)
        while time.monotonic() < deadline:
            with self._lock:
                futs = [f for f, _ in self._pending.values()]
            if not futs:
                return
            for f in futs:
                f._wait_done(max(0.0, deadline - time.monotonic()))

    # -- shutdown -------------------------------------------------------------------------
    def shutdown(self, wait: bool = True) -> None:
        """Stop serving and close every connection; `wait`: let running requests finish."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        try:
            self._listener.close()
        except OSError:
            pass
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        with self._lock:
            conns = list(self._out.values()) + list(self._in)
            self._out.clear()
            self._in.clear()
        for c in conns:
            c.close(RuntimeError("RPC agent shut down"))
        err = RuntimeError("RPC agent shut down before the call completed")
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
            self._owned.clear()
        for f, _ in pending:
            f._try_complete(None, err)


def _tune(sock: socket.socket) -> None:
    """No Nagle delay for small requests; larger buffers for tensor-sized frames."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        except OSError:
            pass


def _peek_id(data: bytes, after_kind: bool) -> Optional[int]:
    """The id of a frame whose unpickling failed (None if it cannot be found): the first
    int of the tuple, after the kind string for requests."""
    try:
        import pickletools  # noqa: PLC0415
        seen = 0 if after_kind else 1
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                seen = 1
            elif seen == 1 and op.name in ("BININT", "BININT1", "BININT2", "LONG1", "INT"):
                return int(arg)
            elif op.name not in ("PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                if seen:
                    return None
        return None
    except Exception:
        return None


def _advertised_host() -> str:
    """The address peers reach this worker at: SHARDOPT_RPC_HOST, else the interface that
    routes to MASTER_ADDR, else loopback."""
    host = os.environ.get("SHARDOPT_RPC_HOST")
    if host:
        return host
    master = os.environ.get("MASTER_ADDR")
    if master and master not in ("localhost", "127.0.0.1", "::1"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((master, 9))
                return s.getsockname()[0]
        except OSError:
            pass
    return "127.0.0.1"
