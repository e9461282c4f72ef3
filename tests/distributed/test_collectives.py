"""Gloo collectives on CPU tensors through the spawning harness (1-4 ranks)."""
import numpy as np

import shardopt
import shardopt.distributed as dist
from shardopt import _C
from shardopt.testing import MultiProcessTestCase, requires_gloo, with_comms

DTYPES = [("float32", np.float32), ("float64", np.float64), ("int32", np.int32),
          ("int64", np.int64)]


def T(a, dtype=None):
    return _C.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=dtype)))


class CollectivesBase(MultiProcessTestCase):
    TIMEOUT = 60

    def _all_reduce(self):
        r, w = self.rank, self.world_size
        for name, npt in DTYPES:
            for n in (0, 1, 7):
                t = T(np.arange(n) + r, npt)
                dist.all_reduce(t)
                self.assertEqual(t.numpy(), (w * np.arange(n) + w * (w - 1) // 2).astype(npt))
        for op, fn in ((dist.ReduceOp.MAX, np.max), (dist.ReduceOp.MIN, np.min),
                       (dist.ReduceOp.PRODUCT, np.prod)):
            t = T([r + 1.0, -(r + 1.0)], np.float64)
            dist.all_reduce(t, op=op)
            vals = np.array([[q + 1.0, -(q + 1.0)] for q in range(w)])
            self.assertEqual(t.numpy(), fn(vals, axis=0))
        t = T([2.0 * r], np.float32)
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        self.assertEqual(t.numpy(), np.array([w - 1.0], np.float32))
        h = T([r + 0.5], np.float32).to(shardopt.float16)
        dist.all_reduce(h)
        self.assertEqual(h.float().numpy(), np.array([w * w / 2.0], np.float32))
        b = T([r + 0.5], np.float32).to(shardopt.bfloat16)
        dist.all_reduce(b)
        self.assertEqual(b.float().numpy(), np.array([w * w / 2.0], np.float32), atol=0.1, rtol=0)
        bo = T([r == 0, False]).to(shardopt.bool) if hasattr(shardopt, "bool") else None
        w_ = dist.all_reduce(T([1.0]), async_op=True)
        self.assertTrue(w_.wait() and w_.is_completed())

    def _rooted(self):
        r, w = self.rank, self.world_size
        for src in range(w):
            t = T(np.full(5, r, np.int64))
            dist.broadcast(t, src)
            self.assertEqual(t.numpy(), np.full(5, src, np.int64))
        t = T(np.full(3, r + 1.0))
        dist.reduce(t, dst=w - 1)
        if r == w - 1:
            self.assertEqual(t.numpy(), np.full(3, w * (w + 1) / 2.0))
        out = T(np.zeros(2))
        scatter_list = [T(np.full(2, 10.0 * i)) for i in range(w)] if r == 0 else None
        dist.scatter(out, scatter_list, src=0)
        self.assertEqual(out.numpy(), np.full(2, 10.0 * r))
        gl = [T(np.zeros(2, np.int32)) for _ in range(w)] if r == 0 else None
        dist.gather(T(np.full(2, r, np.int32)), gl, dst=0)
        if r == 0:
            for i in range(w):
                self.assertEqual(gl[i].numpy(), np.full(2, i, np.int32))

    def _gathers(self):
        r, w = self.rank, self.world_size
        for n in (0, 3):
            out = [T(np.zeros(n, np.float32)) for _ in range(w)]
            dist.all_gather(out, T(np.arange(n, dtype=np.float32) + r))
            for i in range(w):
                self.assertEqual(out[i].numpy(), np.arange(n, dtype=np.float32) + i)
            flat = T(np.zeros(n * w, np.float64))
            dist.all_gather_into_tensor(flat, T(np.full(n, float(r))))
            self.assertEqual(flat.numpy(), np.repeat(np.arange(w, dtype=np.float64), n))
        for n in (0, 1, 5):
            inp = T(np.arange(n * w, dtype=np.float32) * (r + 1))
            out = T(np.zeros(n, np.float32))
            dist.reduce_scatter_tensor(out, inp)
            full = np.arange(n * w, dtype=np.float32) * (w * (w + 1) / 2)
            self.assertEqual(out.numpy(), full[r * n:(r + 1) * n])
            self.assertEqual(inp.numpy(), np.arange(n * w, dtype=np.float32) * (r + 1))
        inp = T(np.arange(2 * w, dtype=np.int64) + 100 * r)
        out = T(np.zeros(2 * w, np.int64))
        dist.all_to_all_single(out, inp)
        expect = np.concatenate([np.arange(2 * r, 2 * r + 2) + 100 * q for q in range(w)])
        self.assertEqual(out.numpy(), expect)

    def _objects_and_p2p(self):
        r, w = self.rank, self.world_size
        objs = [None] * w
        dist.all_gather_object(objs, {"rank": r, "pad": "x" * r * 50})
        self.assertEqual([o["rank"] for o in objs], list(range(w)))
        lst = [1, "two", {3: 4}] if r == 0 else [None, None, None]
        dist.broadcast_object_list(lst, src=0)
        self.assertEqual(lst, [1, "two", {3: 4}])
        gl = [None] * w if r == 0 else None
        dist.gather_object(("hi", r), gl, dst=0)
        if r == 0:
            self.assertEqual(gl, [("hi", i) for i in range(w)])
        if w > 1:
            if r == 0:
                dist.send(T(np.arange(4.0)), dst=1)
            elif r == 1:
                t = T(np.zeros(4))
                dist.recv(t, src=0)
                self.assertEqual(t.numpy(), np.arange(4.0))
        dist.barrier()

    def _all(self):
        self.assertEqual(dist.get_rank(), self.rank)
        self.assertEqual(dist.get_world_size(), self.world_size)
        self.assertEqual(dist.get_backend(), "gloo")
        self._all_reduce()
        self._rooted()
        self._gathers()
        self._objects_and_p2p()


@requires_gloo()
class TestCollectives4(CollectivesBase):
    @with_comms(backend="gloo")
    def test_collectives(self):
        self._all()

    @with_comms(backend="gloo")
    def test_subgroups(self):
        g = dist.new_group([1, 3])
        odd = dist.new_group([0, 2])
        mine = g if self.rank in (1, 3) else odd
        self.assertIs(dist.new_group([0]) is dist.GroupMember.NON_GROUP_MEMBER, self.rank != 0)
        t = T([float(self.rank)])
        dist.all_reduce(t, group=mine)
        self.assertEqual(t.numpy(), np.array([4.0 if self.rank in (1, 3) else 2.0]))
        self.assertEqual(dist.get_world_size(mine), 2)
        self.assertEqual(dist.get_rank(mine), self.rank // 2)
        t = T([float(self.rank)])
        dist.broadcast(t, src=3 if self.rank in (1, 3) else 2, group=mine)
        self.assertEqual(t.numpy(), np.array([3.0 if self.rank in (1, 3) else 2.0]))
        self.assertEqual(dist.get_rank(g if self.rank in (0, 2) else odd), -1)


@requires_gloo()
class TestCollectives3(CollectivesBase):
    @property
    def world_size(self):
        return 3

    @with_comms(backend="gloo")
    def test_collectives(self):
        self._all()


@requires_gloo()
class TestCollectives2(CollectivesBase):
    @property
    def world_size(self):
        return 2

    @with_comms(backend="gloo")
    def test_collectives(self):
        self._all()


@requires_gloo()
class TestCollectives1(CollectivesBase):
    @property
    def world_size(self):
        return 1

    @with_comms(backend="gloo")
    def test_collectives(self):
        self._all()
