"""async_op=True: ops run on the group's worker thread in issue order; Work.wait() raises
the op's error; isend/irecv; recv from any source."""
import gc
import time
from datetime import timedelta

import numpy as np

import shardopt.distributed as dist
from shardopt import _C
from shardopt.testing import MultiProcessTestCase, requires_gloo


def T(a, dtype=np.float32):
    return _C.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=dtype)))


def _init(self, timeout):
    dist.init_process_group("gloo", init_method=f"file://{self.file_name}", rank=self.rank,
                            world_size=self.world_size, timeout=timeout)


def _raises(exc, fn, *words):
    try:
        fn()
    except exc as e:
        for w in words:
            assert w in str(e), (w, str(e))
        return e
    raise AssertionError(f"{exc.__name__} not raised")


@requires_gloo()
class TestAsync(MultiProcessTestCase):
    TIMEOUT = 60

    @property
    def world_size(self):
        return 2

    def test_async_ops(self):
        _init(self, timedelta(seconds=20))
        r, peer = self.rank, 1 - self.rank
        dist.barrier()

        # The call returns at once although rank 1 joins 0.8 s later; Python keeps running
        # (compute overlaps the collective) because the worker thread holds no GIL.
        if r == 1:
            time.sleep(0.8)
        t = T(np.full(1 << 18, r + 1.0))
        t0 = time.monotonic()
        w = dist.all_reduce(t, async_op=True)
        if r == 0:
            # not is_completed() is the proof; the time bound only says "no wait for rank 1".
            assert time.monotonic() - t0 < 0.6
            assert not w.is_completed()
            a, n = np.random.rand(64, 64), 0
            while not w.is_completed():
                a = np.tanh(a @ a)  # compute while the all_reduce runs
                n += 1
            assert n > 0
        assert w.wait() is True
        assert w.is_completed() and w.is_success() and w.exception() is None
        assert w.result()[0] is t
        self.assertEqual(t.numpy(), np.full(1 << 18, 3.0, np.float32))

        # Issue order: PRODUCT, SUM, PRODUCT on one tensor give 16 only in that order;
        # the synchronous op after them waits for them without any wait() call.
        y = T([r + 1.0])
        works = [dist.all_reduce(y, op=op, async_op=True)
                 for op in (dist.ReduceOp.PRODUCT, dist.ReduceOp.SUM, dist.ReduceOp.PRODUCT)]
        dist.all_reduce(y)
        assert all(x.is_completed() for x in works)
        self.assertEqual(y.numpy(), np.array([32.0], np.float32))
        # A long chain of mixed async ops, checked once at the end.
        z = T(np.zeros(5))
        chain = []
        for k in range(20):
            chain.append(dist.broadcast(z, src=k % 2, async_op=True) if k % 3 == 0 else
                         dist.all_reduce(z, async_op=True))
            if k == 10:
                chain.append(dist.barrier(async_op=True))
        for x in chain:
            x.wait()
        # z stays zero through sums and broadcasts; now make it count.
        z.fill_(1.0)
        for _ in range(4):
            dist.all_reduce(z, async_op=True)  # dropped Works: the group keeps them alive
        gc.collect()
        dist.barrier()
        self.assertEqual(z.numpy(), np.full(5, 16.0, np.float32))

        # Staged (non-contiguous) tensors are written back on wait().
        nc = T(np.arange(6.0).reshape(2, 3)).t()
        w = dist.all_reduce(nc, async_op=True)
        w.wait()
        self.assertEqual(nc.numpy(), 2 * np.arange(6.0, dtype=np.float32).reshape(2, 3).T)
        # wait(timeout) on an op that completes in time, and async rooted ops.
        b = T([float(r)] * 3)
        dist.broadcast(b, src=1, async_op=True).wait(timeout=timedelta(seconds=10))
        self.assertEqual(b.numpy(), np.ones(3, np.float32))
        out = [T(np.zeros(2)) for _ in range(2)]
        w = dist.all_gather(out, T([r, r]), async_op=True)
        w.wait()
        assert w.result() is out
        self.assertEqual(out[1].numpy(), np.ones(2, np.float32))
        rs = T(np.zeros(2))
        dist.reduce_scatter_tensor(rs, T(np.arange(4.0)), async_op=True).wait()
        self.assertEqual(rs.numpy(), 2 * np.arange(4.0, dtype=np.float32)[2 * r:2 * r + 2])

        # isend + irecv both ways, posted before waiting: no deadlock.
        rb = T(np.zeros(4))
        ws = dist.isend(T(np.full(4, 10.0 * r)), dst=peer)
        wr = dist.irecv(rb, src=peer)
        assert wr.wait() and ws.wait()
        self.assertEqual(rb.numpy(), np.full(4, 10.0 * peer, np.float32))
        # recv from any source returns the sender; irecv's Work tells it too.
        if r == 0:
            buf = T(np.zeros(2))
            assert dist.recv(buf) == 1
            self.assertEqual(buf.numpy(), np.full(2, 7.0, np.float32))
            w = dist.irecv(buf, tag=5)
            w.wait()
            assert w._source_rank() == 1
            self.assertEqual(buf.numpy(), np.full(2, 8.0, np.float32))
            e = T(np.zeros(0))
            assert dist.recv(e) == 1  # zero elements still match and report the source
        else:
            dist.send(T([7.0, 7.0]), dst=0)
            dist.isend(T([8.0, 8.0]), dst=0, tag=5).wait()
            dist.send(T(np.zeros(0)), dst=0)
        dist.barrier(async_op=True).wait()
        dist.destroy_process_group()

    def test_errors_surface_on_wait(self):
        # A generous rendezvous (start-up skew under load), then groups with short timeouts.
        _init(self, timedelta(seconds=20))
        dist.barrier()
        # Bounds are wide for loaded CI machines: a 2 s group timeout, rank 1 away 3.2 s.
        short = timedelta(seconds=2)
        g = dist.new_group([0, 1], timeout=short)
        if self.rank == 1:
            time.sleep(3.2)  # alive, but never joins rank 0's ops
        else:
            t0 = time.monotonic()
            w1 = dist.barrier(group=g, async_op=True)
            w2 = dist.all_reduce(T([1.0]), group=g, async_op=True)
            assert time.monotonic() - t0 < 0.8  # issuing never blocks
            # A wait with a shorter timeout gives up alone; the op keeps running.
            e = _raises(dist.DistTimeoutError, lambda: w1.wait(timeout=0.2), "Work.wait",
                        "barrier")
            assert time.monotonic() - t0 < 1.6, e  # well before the group's 2 s
            assert not w1.is_completed() and w1.exception() is None
            # The barrier times out after the group timeout; wait() raises it.
            _raises(dist.DistTimeoutError, w1.wait, "barrier")
            assert 1.6 < time.monotonic() - t0 < 8
            assert w1.is_completed() and not w1.is_success()
            assert isinstance(w1.exception(), dist.DistTimeoutError)
            # The op queued behind it fails at once: the group is broken.
            t1 = time.monotonic()
            _raises(dist.DistBackendError, w2.wait, "all_reduce", "unusable after an earlier")
            assert time.monotonic() - t1 < 1.0
            assert isinstance(w2.exception(), dist.DistBackendError)
        dist.barrier()  # the world group is unaffected

        # Destroying a group cancels the ops still queued (after the running one ends).
        g2 = dist.new_group([0, 1], timeout=short)
        if self.rank == 1:
            time.sleep(3.2)
        else:
            w4 = dist.barrier(group=g2, async_op=True)
            w5 = dist.all_reduce(T([1.0]), group=g2, async_op=True)
            _raises(dist.DistTimeoutError, lambda: w4.wait(0.3))  # the barrier is running
            dist.destroy_process_group(g2)
            assert w4.is_completed() and isinstance(w4.exception(), dist.DistTimeoutError)
            _raises(dist.DistBackendError, w5.wait, "all_reduce", "destroyed before the op ran")
        dist.barrier()
        dist.destroy_process_group()
