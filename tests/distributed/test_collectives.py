"""Gloo collectives on CPU tensors: every collective x all 7 dtypes x world size 1-4 x
even / uneven / zero-element sizes (x every ReduceOp for the reductions), plus object
collectives, point-to-point and sub-groups.

To stay fast, one spawned group per world size runs the whole matrix; each case is checked
on its own and the test fails with the list of failing cases (collective, dtype, size, op),
so one bad case does not hide the others.  Values are small integers (sums and products of
up to 4 ranks stay exact in every dtype, bfloat16 included); expected results are computed
in float64 NumPy from the dtype-rounded inputs.

reduce_scatter runs with both algorithms: the default ring and Gloo's
ReduceScatterHalvingDoubling (SHARDOPT_GLOO_REDUCE_SCATTER=halving_doubling).

Reductions on bool follow torch's Gloo backend: SUM and MAX are logical OR, PRODUCT and MIN
logical AND.  ReduceOp.AVG on integer or bool tensors raises RuntimeError as torch does
("result type Float can't be cast to the desired output type").
"""
import os

import numpy as np

import shardopt
import shardopt.distributed as dist
from shardopt import _C
from shardopt.testing import MultiProcessTestCase, requires_gloo, with_comms

DTYPES = [shardopt.float32, shardopt.float64, shardopt.float16, shardopt.bfloat16,
          shardopt.int32, shardopt.int64, shardopt.bool]
OPS = [dist.ReduceOp.SUM, dist.ReduceOp.PRODUCT, dist.ReduceOp.MIN, dist.ReduceOp.MAX,
       dist.ReduceOp.AVG]
AVG_TOL = {"float32": 1e-6, "float64": 1e-12, "float16": 1e-3, "bfloat16": 8e-3}


def make(values, dtype, shape=None):
    """A tensor of `dtype` from float64 values (bool: nonzero)."""
    t = _C.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(dtype)
    return t.reshape(tuple(shape)) if shape is not None else t


def read(t):
    return t.to(shardopt.float64).numpy().reshape(-1)


def vals(rank, n, salt=0):
    """Small integers in [-1, 3] that differ by rank, position and salt."""
    return ((np.arange(n) * 7 + rank * 3 + salt) % 5 - 1).astype(np.float64)


def rounded(v, dtype):
    return read(make(v, dtype))


def reduce_ref(arrays, op, dtype, w):
    a = np.stack(arrays) if arrays[0].size else np.zeros((len(arrays), 0))
    if dtype == shardopt.bool:
        b = a != 0
        return (b.any(0) if op in (dist.ReduceOp.SUM, dist.ReduceOp.MAX) else b.all(0)) * 1.0
    if op == dist.ReduceOp.SUM:
        return a.sum(0)
    if op == dist.ReduceOp.PRODUCT:
        return a.prod(0)
    if op == dist.ReduceOp.MIN:
        return a.min(0)
    if op == dist.ReduceOp.MAX:
        return a.max(0)
    return rounded(a.sum(0), dtype) / w  # AVG: the sum is exact, the division rounds


class Matrix:
    """The per-rank body: runs every case, collects failures, and raises at the end."""

    def __init__(self, rank, world, group=None):
        self.r, self.w = rank, world
        self.group = group
        self.failures = []
        self.count = 0

    def check(self, name, got, want, dtype, op=None):
        self.count += 1
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        dname = str(dtype).rsplit(".", 1)[-1]
        if op == dist.ReduceOp.AVG:
            ok = got.shape == want.shape and np.allclose(got, want, rtol=AVG_TOL[dname],
                                                         atol=AVG_TOL[dname])
        else:
            ok = got.shape == want.shape and np.array_equal(got, want)
        if not ok:
            self.failures.append(f"{name} [{dname}]: got {got[:8]} want {want[:8]}")

    def run(self, name, fn):
        try:
            fn()
        except Exception as e:  # keep going: report every failing case at the end
            self.failures.append(f"{name}: {type(e).__name__}: {e}")

    def sizes(self):
        return (0, 1, 13, 4 * self.w)  # zero, one, uneven w.r.t. the world size, even

    # -- the cases ----------------------------------------------------------------------
    def reductions(self, dt, n):
        r, w = self.r, self.w
        ins = [rounded(vals(q, n), dt) for q in range(w)]
        for op in OPS:
            tag = f"all_reduce n={n} {op.name}"
            t = make(vals(r, n), dt)
            if op == dist.ReduceOp.AVG and not dt.is_floating_point:
                def bad():
                    try:
                        dist.all_reduce(t, op=op)
                    except RuntimeError as e:
                        assert "Cannot use ReduceOp.AVG" in str(e), e
                    else:
                        raise AssertionError("AVG on a non-float dtype did not raise")
                self.run(tag, bad)
                continue
            self.run(tag, lambda: (dist.all_reduce(t, op=op),
                                   self.check(tag, read(t), reduce_ref(ins, op, dt, w), dt, op)))
            if op == dist.ReduceOp.AVG:
                continue
            dst = (n + int(op)) % w
            tag = f"reduce n={n} {op.name} dst={dst}"
            t = make(vals(r, n), dt)

            def red(t=t, dst=dst, op=op, tag=tag):
                dist.reduce(t, dst=dst, op=op)
                # Like torch's Gloo backend, non-dst tensors hold partial results after.
                if r == dst:
                    self.check(tag, read(t), reduce_ref(ins, op, dt, w), dt)
            self.run(tag, red)
        self.reduce_scatters(dt, n)

    def reduce_scatters(self, dt, n):
        r, w = self.r, self.w
        m = n % 6  # reduce_scatter: output of m elements, input m * w
        rs_in = [rounded(vals(q, m * w, 1), dt) for q in range(w)]
        for op in OPS:
            if op == dist.ReduceOp.AVG and not dt.is_floating_point:
                continue
            tag = f"reduce_scatter_tensor m={m} {op.name}"
            out = make(np.full(m, 9.0), dt)
            inp = make(vals(r, m * w, 1), dt, (w, m))

            def rs(out=out, inp=inp, op=op, tag=tag):
                dist.reduce_scatter_tensor(out, inp, op=op, group=self.group)
                full = reduce_ref(rs_in, op, dt, w)
                self.check(tag, read(out), full[r * m:(r + 1) * m], dt, op)
                self.check(tag + " (input intact)", read(inp), rs_in[r], dt)
            self.run(tag, rs)

    def movement(self, dt, n):
        r, w = self.r, self.w
        ins = [rounded(vals(q, n, 2), dt) for q in range(w)]
        src = (n + 1) % w
        t = make(vals(r, n, 2), dt)
        self.run(f"broadcast n={n} src={src}",
                 lambda: (dist.broadcast(t, src=src),
                          self.check(f"broadcast n={n}", read(t), ins[src], dt)))

        def all_gather():
            outs = [make(np.full(n, 9.0), dt) for _ in range(w)]
            dist.all_gather(outs, make(vals(r, n, 2), dt))
            for q in range(w):
                self.check(f"all_gather n={n} [{q}]", read(outs[q]), ins[q], dt)
        self.run(f"all_gather n={n}", all_gather)

        def all_gather_into_tensor():
            out = make(np.full(n * w, 9.0), dt, (w, n))
            dist.all_gather_into_tensor(out, make(vals(r, n, 2), dt))
            self.check(f"all_gather_into_tensor n={n}", read(out), np.concatenate(ins), dt)
        self.run(f"all_gather_into_tensor n={n}", all_gather_into_tensor)

        root = (n + 2) % w

        def scatter():
            out = make(np.full(n, 9.0), dt)
            lst = [make(vals(q, n, 3), dt) for q in range(w)] if r == root else None
            dist.scatter(out, lst, src=root)
            self.check(f"scatter n={n} src={root}", read(out), rounded(vals(r, n, 3), dt), dt)
        self.run(f"scatter n={n}", scatter)

        def gather():
            lst = [make(np.full(n, 9.0), dt) for _ in range(w)] if r == root else None
            dist.gather(make(vals(r, n, 2), dt), lst, dst=root)
            if r == root:
                for q in range(w):
                    self.check(f"gather n={n} dst={root} [{q}]", read(lst[q]), ins[q], dt)
        self.run(f"gather n={n}", gather)

        # all_to_all_single: `rows` rows of 2 per peer (even), then uneven and zero splits.
        def a2a(kind):
            split = (lambda s, d: n % 3) if kind == "even" else \
                    (lambda s, d: (s + 2 * d + n) % 3) if kind == "uneven" else \
                    (lambda s, d: 0)

            def chunk(s, d):  # what rank s sends to rank d
                return rounded(((np.arange(split(s, d) * 2) + 3 * s + d) % 7) - 1, dt)
            send = np.concatenate([chunk(r, d) for d in range(w)])
            recv = np.concatenate([chunk(s, r) for s in range(w)])
            out = make(np.full(recv.size, 9.0), dt, (recv.size // 2, 2))
            inp = make(send, dt, (send.size // 2, 2))
            if kind == "even":
                dist.all_to_all_single(out, inp)
            else:
                dist.all_to_all_single(out, inp, [split(s, r) for s in range(w)],
                                       [split(r, d) for d in range(w)])
            self.check(f"all_to_all_single {kind} n={n}", read(out), recv, dt)
        for kind in ("even", "uneven", "zero"):
            self.run(f"all_to_all_single {kind} n={n}", lambda kind=kind: a2a(kind))

        if w > 1:  # a ring of isend/irecv
            def ring():
                got = make(np.full(n, 9.0), dt)
                ws = dist.isend(make(vals(r, n, 2), dt), dst=(r + 1) % w)
                wr = dist.irecv(got, src=(r - 1) % w)
                wr.wait()
                ws.wait()
                self.check(f"isend/irecv n={n}", read(got), ins[(r - 1) % w], dt)
            self.run(f"isend/irecv n={n}", ring)

    def all(self):
        for dt in DTYPES:
            for n in self.sizes():
                self.reductions(dt, n)
                self.movement(dt, n)
        assert not self.failures, (f"{len(self.failures)} of {self.count} checks failed:\n"
                                   + "\n".join(self.failures[:40]))
        return self.count


class CollectivesBase(MultiProcessTestCase):
    TIMEOUT = 90

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
                dist.send(make(np.arange(4.0), shardopt.float64), dst=1)
            elif r == 1:
                t = make(np.zeros(4), shardopt.float64)
                assert dist.recv(t, src=0) == 0
                self.assertEqual(t.numpy(), np.arange(4.0))
        dist.barrier()

    def _all(self):
        self.assertEqual(dist.get_rank(), self.rank)
        self.assertEqual(dist.get_world_size(), self.world_size)
        self.assertEqual(dist.get_backend(), "gloo")
        count = Matrix(self.rank, self.world_size).all()
        assert count > 500, count  # the matrix really ran
        self._objects_and_p2p()
        # reduce_scatter through Gloo's ReduceScatterHalvingDoubling (the default is the
        # ring): every dtype, op and size again, twice (the second run reuses the cached
        # algorithms).
        os.environ["SHARDOPT_GLOO_REDUCE_SCATTER"] = "halving_doubling"
        try:
            g = dist.new_group()
        finally:
            del os.environ["SHARDOPT_GLOO_REDUCE_SCATTER"]
        m = Matrix(self.rank, self.world_size, group=g)
        for _ in range(2):
            for dt in DTYPES:
                for n in m.sizes():
                    m.reduce_scatters(dt, n)
        assert not m.failures, "\n".join(m.failures[:40])


@requires_gloo()
class TestCollectives4(CollectivesBase):
    @with_comms(backend="gloo")
    def test_collectives(self):
        self._all()
        # sub-groups, in the same spawn
        g = dist.new_group([1, 3])
        odd = dist.new_group([0, 2])
        mine = g if self.rank in (1, 3) else odd
        self.assertIs(dist.new_group([0]) is dist.GroupMember.NON_GROUP_MEMBER, self.rank != 0)
        t = make([float(self.rank)], shardopt.float32)
        dist.all_reduce(t, group=mine)
        self.assertEqual(t.numpy(), np.array([4.0 if self.rank in (1, 3) else 2.0], np.float32))
        self.assertEqual(dist.get_world_size(mine), 2)
        self.assertEqual(dist.get_rank(mine), self.rank // 2)
        t = make([float(self.rank)], shardopt.float32)
        dist.broadcast(t, src=3 if self.rank in (1, 3) else 2, group=mine)
        self.assertEqual(t.numpy(), np.array([3.0 if self.rank in (1, 3) else 2.0], np.float32))
        self.assertEqual(dist.get_rank(g if self.rank in (0, 2) else odd), -1)
        # recv from any source inside a sub-group reports the global rank
        if self.rank == 3:
            dist.send(make([5.0], shardopt.float32), dst=1, group=g)
        elif self.rank == 1:
            t = make([0.0], shardopt.float32)
            assert dist.recv(t, group=g) == 3
            self.assertEqual(t.numpy(), np.array([5.0], np.float32))
        dist.barrier()


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
