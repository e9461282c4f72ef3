"""shardopt.distributed.rpc on 4 ranks: each call, timeouts, a killed worker, RRef lifetime.

Functions run remotely must be importable by the callee, so they live at module level
here (the spawned ranks import this file).  Every RPC test rendezvouses through the test's
file store; graceful shutdowns double as the final barrier.
"""
import gc
import operator
import os
import threading
import time

import numpy as np
import pytest

import shardopt as torch
import shardopt.distributed as dist
from shardopt.distributed import rpc
from shardopt.futures import Future, wait_all
from shardopt.testing import MultiProcessTestCase

WORLD = 4


# -- functions the callees run --------------------------------------------------------------

def _add_tensors(a, b, scale=1.0):
    return (a + b) * scale


def _whoami():
    return rpc.get_worker_info().name


def _raise_value_error(msg):
    raise ValueError(msg)


def _sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def _arange(n, offset):
    return torch.arange(n) + offset


def _owned_count():
    return rpc.api._get_current_rpc_agent().num_owned()


_kept = {}
_served = threading.Semaphore(0)


def _keep(key, rref):
    _kept[key] = rref
    return rref.owner_name()


def _fetch_kept(key):
    return _kept[key].to_here()


def _drop_kept(key):
    del _kept[key]
    gc.collect()
    rpc.api._get_current_rpc_agent().flush_decrefs(10)
    return True


def _block_until_killed():
    _served.release()
    time.sleep(60)
    return "never"


def _rref_sum(rref):
    return rref.to_here().sum().item()


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle _Unpicklable")


def _return_unpicklable():
    return _Unpicklable()


# -- the tests ---------------------------------------------------------------------------

class TestRpc(MultiProcessTestCase):
    TIMEOUT = 60

    @property
    def world_size(self):
        return WORLD

    def _init(self, timeout=20.0, **kw):
        opts = rpc.TensorPipeRpcBackendOptions(rpc_timeout=timeout,
                                               init_method=f"file://{self.file_name}", **kw)
        rpc.init_rpc(f"worker{self.rank}", rank=self.rank, world_size=self.world_size,
                     rpc_backend_options=opts)

    def test_calls(self):
        self._init(num_worker_threads=4)
        me = rpc.get_worker_info()
        self.assertEqual(me, rpc.WorkerInfo(f"worker{self.rank}", self.rank))
        self.assertEqual(repr(me), f"WorkerInfo(id={self.rank}, name=worker{self.rank})")
        peer = (self.rank + 1) % WORLD
        self.assertEqual(rpc.get_worker_info(f"worker{peer}").id, peer)
        with self.assertRaisesRegex(RuntimeError, "Unknown destination worker nobody"):
            rpc.get_worker_info("nobody")
        with self.assertRaisesRegex(RuntimeError, "RPC is already initialized"):
            self._init()

        # rpc_sync: by name, rank and WorkerInfo; tensors and kwargs travel pickled
        a = torch.arange(6, dtype=torch.float64).reshape(2, 3)
        for to in (f"worker{peer}", peer, rpc.get_worker_info(f"worker{peer}")):
            out = rpc.rpc_sync(to, _add_tensors, args=(a, a), kwargs={"scale": 0.5})
            np.testing.assert_array_equal(out.numpy(), a.numpy())
        self.assertEqual(rpc.rpc_sync(peer, _whoami), f"worker{peer}")
        self.assertEqual(rpc.rpc_sync(self.rank, _whoami), f"worker{self.rank}")  # to self
        self.assertEqual(rpc.rpc_sync(peer, operator.mul, args=(6, 7)), 42)

        # rpc_async: a Future with wait/done/then/value, to every worker at once
        futs = [rpc.rpc_async(f"worker{r}", _arange, args=(5, r)) for r in range(WORLD)]
        vals = wait_all(futs)
        for r, v in enumerate(vals):
            np.testing.assert_array_equal(v.numpy(), np.arange(5) + r)
            self.assertTrue(futs[r].done())
            np.testing.assert_array_equal(futs[r].value().numpy(), np.arange(5) + r)
        chained = rpc.rpc_async(peer, operator.add, args=(1, 2)).then(lambda f: f.value() * 10)
        self.assertEqual(chained.wait(), 30)
        # a callback may itself wait on an RPC to the same peer (it runs on the pool)
        nested = rpc.rpc_async(peer, operator.add, args=(1, 1)).then(
            lambda f: rpc.rpc_sync(peer, operator.add, args=(f.value(), 1)))
        self.assertEqual(nested.wait(), 3)
        self.assertIsInstance(chained, Future)

        # the callee's exception comes back with its type, naming the callee
        with self.assertRaisesRegex(ValueError, rf"On WorkerInfo\(id={peer}, name=worker{peer}\)"
                                    r"[\s\S]*boom"):
            rpc.rpc_sync(peer, _raise_value_error, args=("boom",))
        fut = rpc.rpc_async(peer, _raise_value_error, args=("later",))
        with self.assertRaisesRegex(ValueError, "later"):
            fut.wait()
        with self.assertRaisesRegex(RuntimeError, "could not pickle the RPC result"):
            rpc.rpc_sync(peer, _return_unpicklable)
        with self.assertRaisesRegex(TypeError, "function should be callable"):
            rpc.rpc_sync(peer, 3)
        with self.assertRaisesRegex(ValueError, "Cannot get WorkerInfo from name"):
            rpc.rpc_sync(1.5, _whoami)

        # remote -> RRef
        rref = rpc.remote(f"worker{peer}", _arange, args=(4, 100))
        self.assertFalse(rref.is_owner())
        self.assertEqual(rref.owner(), rpc.get_worker_info(f"worker{peer}"))
        self.assertEqual(rref.owner_name(), f"worker{peer}")
        np.testing.assert_array_equal(rref.to_here().numpy(), np.arange(4) + 100)
        np.testing.assert_array_equal(rref.to_here(timeout=5).numpy(), np.arange(4) + 100)
        self.assertTrue(rref.confirmed_by_owner())
        with self.assertRaisesRegex(RuntimeError, "Cannot call localValue\\(\\) on a non-local"):
            rref.local_value()
        # the RRef travels as an argument: the callee fetches it from its owner
        self.assertEqual(rpc.rpc_sync((self.rank + 2) % WORLD, _rref_sum, args=(rref,)),
                         float(np.arange(4).sum() + 400))
        # a function that raises inside remote(): to_here() raises it
        bad = rpc.remote(peer, _raise_value_error, args=("in remote",))
        with self.assertRaisesRegex(ValueError, "in remote"):
            bad.to_here()
        # an RRef owned here
        local = rpc.RRef(torch.ones(3))
        self.assertTrue(local.is_owner())
        self.assertEqual(local.owner_name(), f"worker{self.rank}")
        np.testing.assert_array_equal(local.local_value().numpy(), np.ones(3))
        np.testing.assert_array_equal(local.to_here().numpy(), np.ones(3))
        self.assertEqual(rpc.rpc_sync(peer, _rref_sum, args=(local,)), 3.0)
        # remote() to self and the proxies
        mine = rpc.remote(self.rank, _arange, args=(3, 1))
        self.assertTrue(mine.is_owner())
        np.testing.assert_array_equal(mine.to_here().numpy(), [1, 2, 3])
        self.assertEqual(rref.rpc_sync().sum().item(), float(np.arange(4).sum() + 400))
        import pickle
        with self.assertRaisesRegex(RuntimeError, "RRef pickling is only allowed inside RPC"):
            pickle.dumps(rref)
        rpc.shutdown()
        with self.assertRaisesRegex(RuntimeError, "RPC has not been initialized"):
            rpc.rpc_sync(peer, _whoami)

    def test_timeouts(self):
        self._init(timeout=20.0)
        peer = (self.rank + 1) % WORLD
        t0 = time.monotonic()
        fut = rpc.rpc_async(peer, _sleep_then, args=(3.0, "late"), timeout=0.3)
        with self.assertRaisesRegex(RuntimeError, r"RPC ran for more than set timeout \(300 ms\)"):
            fut.wait()
        self.assertLess(time.monotonic() - t0, 2.5)
        with self.assertRaisesRegex(RuntimeError, "ran for more than set timeout"):
            rpc.rpc_sync(peer, _sleep_then, args=(3.0, "late"), timeout=0.2)
        # remote(): creation not acknowledged in time -> to_here says so
        rref = rpc.remote(peer, _sleep_then, args=(3.0, 1), timeout=0.2)
        time.sleep(0.5)
        self.assertFalse(rref.confirmed_by_owner())
        with self.assertRaisesRegex(RuntimeError, "RRef creation via rpc.remote\\(\\) timed out"):
            rref.to_here()
        # to_here(timeout) on a value still being computed
        slow = rpc.remote(peer, _sleep_then, args=(3.0, 2))
        with self.assertRaisesRegex(RuntimeError, "ran for more than set timeout"):
            slow.to_here(timeout=0.3)
        self.assertEqual(slow.to_here(), 2)
        # timeout=0 means no timeout; a call within its timeout succeeds
        self.assertEqual(rpc.rpc_sync(peer, _sleep_then, args=(0.1, "ok"), timeout=0), "ok")
        self.assertEqual(rpc.rpc_sync(peer, _sleep_then, args=(0.1, "ok"), timeout=5), "ok")
        rpc.shutdown()

    def test_dead_worker_fails_pending_calls(self):
        self._init(timeout=30.0)
        victim = WORLD - 1
        if self.rank == victim:
            for _ in range(WORLD - 1):  # every other rank has a call pending here
                self.assertTrue(_served.acquire(timeout=20))
            time.sleep(0.2)
            os._exit(0)
        t0 = time.monotonic()
        fut = rpc.rpc_async(victim, _block_until_killed)
        rref = rpc.remote(victim, _sleep_then, args=(60, 0))
        with self.assertRaisesRegex(RuntimeError, "worker3.*connection was lost"):
            fut.wait()
        self.assertLess(time.monotonic() - t0, 15)  # well within the 30 s RPC timeout
        with self.assertRaises(RuntimeError):
            rref.to_here()
        t1 = time.monotonic()
        with self.assertRaisesRegex(RuntimeError, "worker3"):
            rpc.rpc_sync(victim, _whoami)  # connection refused, at once
        self.assertLess(time.monotonic() - t1, 5)
        # the living workers still talk to each other
        other = (self.rank + 1) % (WORLD - 1)
        self.assertEqual(rpc.rpc_sync(other, _whoami), f"worker{other}")
        rpc.api._barrier([f"worker{r}" for r in range(WORLD - 1)])  # the living ones
        # graceful shutdown cannot reach the dead worker: it fails within its timeout
        t2 = time.monotonic()
        with self.assertRaises(Exception):
            rpc.shutdown(graceful=True, timeout=2)
        self.assertLess(time.monotonic() - t2, 10)
        self.assertFalse(rpc._is_current_rpc_agent_set())

    def test_rref_lifetime(self):
        self._init()
        if self.rank == 1:
            owner = "worker0"
            # a user RRef made by remote(): the owner holds one value
            rref = rpc.remote(owner, _arange, args=(3, 7))
            np.testing.assert_array_equal(rref.to_here().numpy(), [7, 8, 9])
            self.assertEqual(rpc.rpc_sync(owner, _owned_count), 1)
            # forked to worker2, then dropped here: the owner keeps the value for worker2
            self.assertEqual(rpc.rpc_sync("worker2", _keep, args=("a", rref)), owner)
            del rref
            gc.collect()
            rpc.api._get_current_rpc_agent().flush_decrefs(10)
            self.assertEqual(rpc.rpc_sync(owner, _owned_count), 1)
            np.testing.assert_array_equal(
                rpc.rpc_sync("worker2", _fetch_kept, args=("a",)).numpy(), [7, 8, 9])
            # the last reference goes: the owner frees the value
            self.assertTrue(rpc.rpc_sync("worker2", _drop_kept, args=("a",)))
            self.assertEqual(rpc.rpc_sync(owner, _owned_count), 0)
            # an RRef owned here, forked to the owner-to-be's peers and back to the owner
            mine = rpc.RRef(torch.full((2,), 5.0))
            self.assertEqual(_owned_count(), 1)
            rpc.rpc_sync("worker3", _keep, args=("b", mine))
            rpc.rpc_sync("worker1", _keep, args=("c", mine))  # to itself: still counted
            del mine
            _kept.pop("c")
            gc.collect()
            rpc.api._get_current_rpc_agent().flush_decrefs(10)
            self.assertEqual(_owned_count(), 1)
            np.testing.assert_array_equal(
                rpc.rpc_sync("worker3", _fetch_kept, args=("b",)).numpy(), [5.0, 5.0])
            rpc.rpc_sync("worker3", _drop_kept, args=("b",))
            self.assertEqual(_owned_count(), 0)
        rpc.shutdown()
        self.assertFalse(rpc._is_current_rpc_agent_set())


# -- single-process checks ------------------------------------------------------------------

def test_not_initialized_errors():
    assert rpc.is_available()
    assert not rpc._is_current_rpc_agent_set()
    with pytest.raises(RuntimeError, match="RPC has not been initialized. Call "
                                           "torch.distributed.rpc.init_rpc first."):
        rpc.rpc_sync("worker0", _whoami)
    with pytest.raises(RuntimeError, match="RPC has not been initialized"):
        rpc.get_worker_info()
    with pytest.raises(RuntimeError, match="RPC has not been initialized"):
        rpc.RRef(1)
    with pytest.raises(RuntimeError, match="Current RPC agent is not set"):
        rpc.shutdown()


def test_init_rpc_argument_errors():
    with pytest.raises(TypeError, match="Argument backend must be a member of BackendType"):
        rpc.init_rpc("w", backend="tensorpipe", rank=0, world_size=1)
    with pytest.raises(TypeError, match="rpc_backend_options must be an instance"):
        rpc.init_rpc("w", rank=0, world_size=1, rpc_backend_options={})
    with pytest.raises(TypeError, match="Argument name must be of type str"):
        rpc.init_rpc(3, rank=0, world_size=1)
    with pytest.raises(TypeError, match="Argument rank must be of type int"):
        rpc.init_rpc("w", rank="0", world_size=1)
    with pytest.raises(ValueError, match="Worker name must match"):
        rpc.init_rpc("bad name!", rank=0, world_size=1)
    with pytest.raises(ValueError, match="rpc_timeout must be >= 0"):
        rpc.TensorPipeRpcBackendOptions(rpc_timeout=-2)
    with pytest.raises(ValueError, match="num_worker_threads"):
        rpc.TensorPipeRpcBackendOptions(num_worker_threads=0)
    opts = rpc.TensorPipeRpcBackendOptions()
    assert (opts.num_worker_threads, opts.rpc_timeout, opts.init_method) == (16, 60.0, "env://")
    opts.set_device_map("worker1", {0: 1})
    assert opts.device_maps == {"worker1": {0: 1}}
    assert rpc.BackendType.TENSORPIPE in list(rpc.BackendType)


def test_single_worker_round_trip(tmp_path):
    opts = rpc.TensorPipeRpcBackendOptions(init_method=f"file://{tmp_path / 'store'}",
                                           rpc_timeout=10)
    rpc.init_rpc("solo", rank=0, world_size=1, rpc_backend_options=opts)
    try:
        assert rpc.get_worker_info() == rpc.WorkerInfo("solo", 0)
        assert rpc.rpc_sync("solo", operator.add, args=(2, 3)) == 5
        assert rpc.rpc_async(0, operator.neg, args=(4,)).wait() == -4
        r = rpc.remote("solo", operator.add, args=(1, 1))
        assert r.is_owner() and r.to_here() == 2 and r.local_value() == 2
    finally:
        rpc.shutdown()
    assert not rpc._is_current_rpc_agent_set()


def test_future_api():
    f = Future()
    assert not f.done()
    with pytest.raises(RuntimeError, match="before the future completed"):
        f.value()
    g = f.then(lambda x: x.value() + 1)
    f.set_result(1)
    assert f.done() and f.wait() == 1 and g.wait() == 2
    with pytest.raises(RuntimeError, match="only be marked completed once"):
        f.set_result(2)
    h = Future()
    h.set_exception(KeyError("k"))
    with pytest.raises(KeyError):
        h.wait()
    with pytest.raises(TypeError, match="not an Exception"):
        Future().set_exception(3)


def _big(n):
    return torch.ones(n)


class TestRpcFrameLimit(MultiProcessTestCase):
    """Frames over SHARDOPT_RPC_MAX_FRAME are refused on both sides, failing just that call."""
    TIMEOUT = 60

    @property
    def world_size(self):
        return 2

    def setUp(self):
        self._saved = os.environ.get("SHARDOPT_RPC_MAX_FRAME")
        os.environ["SHARDOPT_RPC_MAX_FRAME"] = str(1 << 20)  # the spawned ranks inherit it
        super().setUp()

    def tearDown(self):
        if self._saved is None:
            os.environ.pop("SHARDOPT_RPC_MAX_FRAME", None)
        else:
            os.environ["SHARDOPT_RPC_MAX_FRAME"] = self._saved
        super().tearDown()

    def test_frame_limit(self):
        opts = rpc.TensorPipeRpcBackendOptions(rpc_timeout=20,
                                               init_method=f"file://{self.file_name}")
        rpc.init_rpc(f"worker{self.rank}", rank=self.rank, world_size=2,
                     rpc_backend_options=opts)
        peer = 1 - self.rank
        with self.assertRaisesRegex(ValueError, "exceeds the limit of 1048576"):
            rpc.rpc_sync(peer, _add_tensors, args=(torch.ones(300000), 1.0))
        t0 = time.monotonic()
        with self.assertRaisesRegex(RuntimeError, "over the frame limit of 1048576"):
            rpc.rpc_sync(peer, _big, args=(300000,))
        self.assertLess(time.monotonic() - t0, 10)  # an error reply, not a timeout
        # the connection still works
        self.assertEqual(rpc.rpc_sync(peer, _big, args=(4,)).sum().item(), 4.0)
        rpc.shutdown()


def test_missing_worker_fails_rendezvous_within_timeout(tmp_path):
    opts = rpc.TensorPipeRpcBackendOptions(init_method=f"file://{tmp_path / 'store'}",
                                           rpc_timeout=1)
    t0 = time.monotonic()
    with pytest.raises(dist.DistStoreError, match="timeout after 1 s waiting for key"):
        rpc.init_rpc("lonely", rank=0, world_size=2, rpc_backend_options=opts)
    assert time.monotonic() - t0 < 10
    assert not rpc._is_current_rpc_agent_set()
    # and a later init works
    opts2 = rpc.TensorPipeRpcBackendOptions(init_method=f"file://{tmp_path / 'store2'}",
                                            rpc_timeout=5)
    rpc.init_rpc("lonely", rank=0, world_size=1, rpc_backend_options=opts2)
    rpc.shutdown()


def test_send_on_a_lost_connection_names_the_worker():
    """A call to a worker whose connection already died fails naming that worker (its
    WorkerInfo), the same words as a call that was pending when the connection went."""
    import socket

    from shardopt.distributed.rpc.agent import WorkerInfo, _Conn

    a, b = socket.socketpair()
    try:
        conn = _Conn(a, 3, str(WorkerInfo("worker3", 3)))
        conn.close(ConnectionResetError(104, "Connection reset by peer"))
        with pytest.raises(RuntimeError, match=r"worker3.*connection was lost"):
            conn.send(b"x")
    finally:
        b.close()
