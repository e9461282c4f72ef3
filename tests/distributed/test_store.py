"""TCPStore / FileStore / PrefixStore: semantics, concurrency, timeouts, hostile frames,
server death.  Only 127.0.0.1 is used, and every wait is bounded."""
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

import pytest

import shardopt.distributed as dist

HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _master(**kw):
    kw.setdefault("timeout", timedelta(seconds=2))
    return dist.TCPStore(HOST, 0, world_size=1, is_master=True, **kw)


def _py(code, *args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


# ---- exception hierarchy ------------------------------------------------------------------

def test_exception_hierarchy():
    import shardopt._C as C
    assert issubclass(dist.DistError, RuntimeError)
    for name in ("DistTimeoutError", "DistBackendError", "DistStoreError"):
        cls = getattr(dist, name)
        assert issubclass(cls, dist.DistError)
        assert cls is getattr(C, name)  # one definition shared by C and Python


# ---- TCPStore semantics -------------------------------------------------------------------

def test_set_get_add_check_delete_numkeys():
    s = _master()
    assert s.port > 0
    assert s.num_keys() == 1  # torch counts its worker-join key
    s.set("k", "v")
    s.set(b"bin", b"\x00\xff")
    assert s.get("k") == b"v" and s.get(b"bin") == b"\x00\xff"
    assert s.add("cnt", 5) == 5 and s.add("cnt", -2) == 3
    assert s.get("cnt") == b"3"
    assert s.check(["k", "cnt"]) and not s.check(["k", "nope"])
    assert s.num_keys() == 4
    assert s.delete_key("k") is True and s.delete_key("k") is False
    assert s.num_keys() == 3
    s.set("e", b"")
    assert s.get("e") == b""
    assert s.compare_set("cs", "", "a") == b"a"
    assert s.compare_set("cs", "zz", "b") == b"a"
    assert s.compare_set("cs", "a", "b") == b"b"
    assert s.timeout == timedelta(seconds=2)
    s.set_timeout(timedelta(seconds=1))
    assert s.timeout == timedelta(seconds=1)


def test_add_on_non_integer_raises():
    s = _master()
    s.set("x", "abc")
    with pytest.raises(dist.DistStoreError, match="not an integer"):
        s.add("x", 1)
    assert s.get("x") == b"abc"  # connection still usable


def test_bad_arguments_name_the_argument():
    s = _master()
    with pytest.raises(TypeError, match="key"):
        s.set(1, "v")
    with pytest.raises(TypeError, match="value"):
        s.set("k", 3.0)
    with pytest.raises(ValueError, match="key"):
        s.set("k" * 5000, "v")
    with pytest.raises(ValueError, match="value"):
        s.set("k", b"x" * ((32 << 20) + 1))
    with pytest.raises(TypeError, match="amount"):
        s.add("k", 1.5)
    with pytest.raises(TypeError, match="list"):
        s.wait("k")
    with pytest.raises(ValueError, match="port"):
        dist.TCPStore(HOST, 70000)
    with pytest.raises(TypeError, match="timeout"):
        dist.TCPStore(HOST, 0, is_master=True, timeout="soon")
    with pytest.raises(ValueError, match="world_size"):
        dist.TCPStore(HOST, 0, world_size=0, is_master=True)


def test_get_blocks_until_set_by_another_client():
    s = _master()
    c = dist.TCPStore(HOST, s.port, timeout=timedelta(seconds=5))
    threading.Timer(0.2, lambda: s.set("late", "here")).start()
    t0 = time.monotonic()
    assert c.get("late") == b"here"
    assert 0.1 < time.monotonic() - t0 < 3
    threading.Timer(0.1, lambda: s.add("w2", 1)).start()
    c.wait(["late", "w2"], timedelta(seconds=3))


def test_get_and_wait_time_out_and_store_stays_usable():
    s = _master(timeout=timedelta(seconds=0.3))
    t0 = time.monotonic()
    with pytest.raises(dist.DistStoreError, match="get.*missing.*timeout"):
        s.get("missing")
    assert 0.25 < time.monotonic() - t0 < 2
    with pytest.raises(dist.DistStoreError, match="wait"):
        s.wait(["missing"], timedelta(seconds=0.2))
    s.set("missing", "now")  # the client reconnects after giving up
    assert s.get("missing") == b"now"


def test_wait_for_workers_times_out():
    t0 = time.monotonic()
    with pytest.raises(dist.DistStoreError, match="workers"):
        dist.TCPStore(HOST, 0, world_size=3, is_master=True, timeout=timedelta(seconds=0.5))
    assert time.monotonic() - t0 < 3


def test_wait_for_workers_joins():
    # The master blocks in its constructor until the other workers connect.
    sock = socket.socket()
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    sock.close()
    p = _py("""
        import sys, shardopt.distributed as d
        c = d.TCPStore('127.0.0.1', int(sys.argv[1]), world_size=2, timeout=5)
        print(c.get('hello').decode())
        """, port)
    s = dist.TCPStore(HOST, port, world_size=2, is_master=True, timeout=timedelta(seconds=10))
    s.set("hello", "world")
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert out.decode().strip() == "world"


def test_client_connect_times_out_without_server():
    sock = socket.socket()
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    sock.close()
    t0 = time.monotonic()
    with pytest.raises(dist.DistStoreError, match="connecting"):
        dist.TCPStore(HOST, port, timeout=timedelta(seconds=0.3))
    assert time.monotonic() - t0 < 2


def test_concurrent_adds_from_processes():
    s = dist.TCPStore(HOST, 0, world_size=1, is_master=True, timeout=timedelta(seconds=30))
    n_procs, n_adds = 4, 200
    procs = [_py("""
        import sys, shardopt.distributed as d
        c = d.TCPStore('127.0.0.1', int(sys.argv[1]), timeout=20, wait_for_workers=False)
        for _ in range(int(sys.argv[2])):
            c.add('counter', 1)
        c.set('done/' + sys.argv[3], '1')
        """, s.port, n_adds, i) for i in range(n_procs)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    s.wait([f"done/{i}" for i in range(n_procs)], timedelta(seconds=5))
    assert s.add("counter", 0) == n_procs * n_adds


def test_threads_share_one_store():
    s = _master(timeout=timedelta(seconds=10))
    errors = []

    def work():
        try:
            for _ in range(100):
                s.add("t", 1)
        except Exception as e:  # pragma: no cover
            errors.append(e)
    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert not errors and s.add("t", 0) == 400


# ---- hostile frames -----------------------------------------------------------------------

def _raw(port):
    r = socket.create_connection((HOST, port), timeout=2)
    r.settimeout(2)
    return r


def _expect_closed(sock):
    try:
        data = sock.recv(64)
    except ConnectionResetError:
        data = b""
    assert data == b""
    sock.close()


@pytest.mark.parametrize("frame", [
    b"GARBAGE-NOT-A-FRAME-AT-ALL",                                      # bad magic
    struct.pack("<IIIQ", 0x564B4F53, 99, 1, 0) + b"k",                   # unknown command
    struct.pack("<IIIQ", 0x564B4F53, 1, 1 << 30, 0),                     # oversized key
    struct.pack("<IIIQ", 0x564B4F53, 1, 1, 1 << 40),                     # oversized value
    struct.pack("<IIIQ", 0x564B4F53, 3, 1, 3) + b"kabc",                 # add with bad delta
])
def test_malformed_frames_close_only_that_connection(frame):
    s = _master()
    good = dist.TCPStore(HOST, s.port, timeout=timedelta(seconds=2))
    good.set("before", "1")
    r = _raw(s.port)
    r.sendall(frame)
    _expect_closed(r)
    assert good.get("before") == b"1"
    good.set("after", "2")
    assert s.get("after") == b"2"


def test_half_frame_and_idle_connections_do_not_stall_server():
    s = _master()
    idle = [_raw(s.port) for _ in range(20)]
    half = _raw(s.port)
    half.sendall(struct.pack("<IIIQ", 0x564B4F53, 1, 3, 10) + b"ke")  # then nothing
    t0 = time.monotonic()
    for i in range(50):
        s.set(f"k{i}", str(i))
    assert s.get("k49") == b"49"
    assert time.monotonic() - t0 < 2
    for r in idle + [half]:
        r.close()


def test_pipelining_while_waiting_is_rejected():
    s = _master()
    r = _raw(s.port)
    get = struct.pack("<IIIQ", 0x564B4F53, 2, 4, 0) + b"nope"
    r.sendall(get)
    time.sleep(0.05)
    r.sendall(get)  # a second request while the first is parked: protocol violation
    _expect_closed(r)
    s.set("nope", "x")
    assert s.get("nope") == b"x"


def test_client_disconnect_while_waiting_is_cleaned_up():
    s = _master()
    for _ in range(10):
        r = _raw(s.port)
        r.sendall(struct.pack("<IIIQ", 0x564B4F53, 2, 3, 0) + b"zzz")
        r.close()
    s.set("zzz", "1")
    assert s.get("zzz") == b"1" and s.num_keys() == 2


# ---- server death -------------------------------------------------------------------------

def test_server_process_killed_client_raises():
    p = _py("""
        import sys, time, shardopt.distributed as d
        s = d.TCPStore('127.0.0.1', 0, is_master=True, timeout=5, wait_for_workers=False)
        print(s.port, flush=True)
        time.sleep(60)
        """)
    try:
        port = int(p.stdout.readline())
        c = dist.TCPStore(HOST, port, timeout=timedelta(seconds=10), wait_for_workers=False)
        c.set("a", "1")
        result = {}

        def blocked_get():
            t0 = time.monotonic()
            try:
                c.get("never")
            except dist.DistStoreError as e:
                result["err"] = (e, time.monotonic() - t0)
        t = threading.Thread(target=blocked_get)
        t.start()
        time.sleep(0.2)
        p.send_signal(signal.SIGKILL)
        t.join(8)
        assert not t.is_alive()
        err, took = result["err"]
        assert "closed" in str(err) or "failed" in str(err)
        assert took < 5  # noticed at once, not after the 10 s timeout
        with pytest.raises(dist.DistStoreError):
            c.set("b", "2")
    finally:
        p.kill()
        p.wait(5)
        p.stdout.close()
        p.stderr.close()


def test_master_store_deleted_stops_server():
    s = _master()
    c = dist.TCPStore(HOST, s.port, timeout=timedelta(seconds=1), wait_for_workers=False)
    c.set("a", "1")
    del s
    with pytest.raises(dist.DistStoreError):
        c.get("a")


# ---- FileStore / PrefixStore --------------------------------------------------------------

def test_filestore_semantics(tmp_path):
    path = tmp_path / "store"
    a = dist.FileStore(str(path), 2)
    b = dist.FileStore(str(path), 2)
    a.set("k", "v")
    assert b.get("k") == b"v"
    assert a.add("c", 2) == 2 and b.add("c", 3) == 5
    assert b.check(["k", "c"]) and not b.check(["zz"])
    assert b.num_keys() == 2
    assert b.delete_key("k") and not a.check(["k"])
    assert a.compare_set("cs", "", "x") == b"x"
    a.set_timeout(timedelta(seconds=0.2))
    t0 = time.monotonic()
    with pytest.raises(dist.DistStoreError, match="timeout"):
        a.get("missing")
    with pytest.raises(dist.DistStoreError, match="missing"):
        a.wait(["missing"], timedelta(seconds=0.1))
    assert time.monotonic() - t0 < 2


def test_filestore_concurrent_adds(tmp_path):
    path = str(tmp_path / "store")
    procs = [_py("""
        import sys, shardopt.distributed as d
        s = d.FileStore(sys.argv[1], 3)
        for _ in range(50):
            s.add('n', 1)
        """, path) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert dist.FileStore(path).add("n", 0) == 150


def test_prefix_store():
    s = _master()
    p = dist.PrefixStore("pg1", s)
    p.set("k", "v")
    assert s.get("pg1/k") == b"v" and p.get("k") == b"v"
    assert p.add("n", 2) == 2 and p.check(["k", "n"])
    p.wait(["k"], timedelta(seconds=1))
    assert p.delete_key("k")
    assert isinstance(s, dist.Store) and isinstance(p, dist.Store)
