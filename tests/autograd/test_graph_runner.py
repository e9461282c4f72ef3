"""_C._run_graph (csrc/tensor/autograd_engine.c), the C loop behind backward(): driven here
with plain Python nodes (the duck-typed protocol: next_functions, _num_outputs, _apply,
_release, _retain), so the order, summing, release and every error path are checked without
the tensor ops in between; the Tensor-level behaviour is in test_autograd_engine.py."""
import gc
import sys
import weakref

import pytest

import shardopt
from shardopt import _C
from shardopt.autograd import grad_mode
from shardopt.autograd.engine import _retain
from shardopt.autograd.graph import AccumulateGrad


class Rec:
    """A node that records what it received and sends `scale * grad` to every edge."""

    def __init__(self, name, log, edges=(), scale=1, outputs=1):
        self.name, self.log, self.scale = name, log, scale
        self.next_functions = tuple(edges)
        self._num_outputs = outputs
        self._retain = None
        self.released = 0

    def _apply(self, grads):
        self.log.append((self.name, list(grads)))
        g = sum(x for x in grads if x is not None)
        return [g * self.scale] * len(self.next_functions)

    def _release(self):
        self.released += 1


class Sink(Rec):
    pass


def run(roots, grads, retain=False, accumulate=True, capture=None, captured=None,
        acc_type=Sink, retain_fn=_retain):
    return _C._run_graph(roots, grads, retain, accumulate, capture, captured, acc_type,
                         retain_fn)


def test_chain_runs_in_order_and_releases():
    log = []
    c = Sink("c", log)
    b = Rec("b", log, [(c, 0)], scale=3)
    a = Rec("a", log, [(b, 0)], scale=2)
    assert run([(a, 0)], [1]) is None
    assert log == [("a", [1]), ("b", [2]), ("c", [6])]
    assert (a.released, b.released, c.released) == (1, 1, 1)


def test_retain_graph_skips_release():
    log = []
    a = Rec("a", log, [(Sink("s", log), 0)])
    run([(a, 0)], [1], retain=True)
    assert a.released == 0


def test_diamond_sums_before_the_shared_node_runs():
    log = []
    d = Sink("d", log)
    b = Rec("b", log, [(d, 0)], scale=2)
    c = Rec("c", log, [(d, 0)], scale=5)
    a = Rec("a", log, [(b, 0), (c, 0)])
    run([(a, 0)], [1])
    assert log[-1] == ("d", [7]) and [n for n, _ in log].count("d") == 1


def test_multi_output_node_gets_one_buffer_slot_per_output():
    log = []
    m = Rec("m", log, [], outputs=3)
    a = Rec("a", log, [(m, 2), (m, 0)], scale=4)
    run([(a, 0)], [1])
    assert log[-1] == ("m", [4, None, 4])


def test_roots_sum_into_the_same_node_and_none_edges_are_skipped():
    log = []
    s = Sink("s", log)
    a = Rec("a", log, [(None, 0), (s, 0)])
    run([(a, 0), (a, 0)], [1, 10])
    assert log[0] == ("a", [11])


def test_all_none_buffer_does_not_call_apply_but_reaches_children():
    log = []
    s = Sink("s", log)
    a = Rec("a", log, [(s, 0)])
    run([(a, 0)], [None])
    assert log == []  # neither ran: no gradient anywhere
    assert a.released == 1 and s.released == 1


def test_deep_chain_is_not_recursive():
    log = []
    node = Sink("end", log)
    for i in range(200_000):
        node = Rec(i, [], [(node, 0)])
    run([(node, 0)], [1])
    assert log == [("end", [1])]


def test_capture_fills_positions_and_skips_other_sinks():
    log = []
    s1, s2 = Sink("s1", log), Sink("s2", log)
    a = Rec("a", log, [(s1, 0), (s2, 0)], scale=2)
    capture = {(id(s1), 0): [0, 2]}
    captured = [None, None, None]
    run([(a, 0)], [1], accumulate=False, capture=capture, captured=captured)
    assert captured == [2, None, 2]
    assert [n for n, _ in log] == ["a"]  # autograd.grad: no sink accumulates
    log.clear()
    run([(a, 0)], [1], accumulate=True, capture={(id(s1), 0): [0]}, captured=[None])
    assert sorted(n for n, _ in log) == ["a", "s1"]  # backward(inputs=): only s1


def test_retain_fn_sees_the_buffer():
    seen = []
    a = Rec("a", [], [])
    a._retain = {0: None}
    run([(a, 0)], [3], retain_fn=lambda node, buf: seen.append((node, list(buf))))
    assert seen == [(a, [3])]


def test_exception_in_apply_propagates_and_frees_everything():
    class Boom(Rec):
        def _apply(self, grads):
            raise ValueError("boom")

    s = Sink("s", [])
    b = Boom("b", [], [(s, 0)])
    refs = sys.getrefcount(s), sys.getrefcount(b)
    with pytest.raises(ValueError, match="boom"):
        run([(b, 0)], [1])
    gc.collect()
    assert (sys.getrefcount(s), sys.getrefcount(b)) == refs


def test_nodes_and_gradients_are_not_leaked():
    class G:
        def __add__(self, o):
            return G()

        def __mul__(self, o):
            return G()

        __radd__ = __add__

    log = []
    s = Sink("s", log)
    a = Rec("a", log, [(s, 0), (s, 0)])
    g = G()
    wa, ws, wg = weakref.ref(a), weakref.ref(s), weakref.ref(g)
    run([(a, 0)], [g])
    del a, s, g, log
    gc.collect()
    assert wa() is None and ws() is None and wg() is None


@pytest.mark.parametrize("roots, grads, kw, exc, msg", [
    ([], [1], {}, ValueError, "0 roots but 1 grads"),
    ([(None, 0)], [1], {}, ValueError, "root 0 has no node"),
    (["x"], [1], {}, TypeError, "next_functions entries must be"),
    ([], [], {"capture": []}, TypeError, "capture must be a dict"),
    ([], [], {"capture": {}, "captured": ()}, TypeError, "captured must be a list"),
    ([], [], {"acc_type": 3}, TypeError, "acc_type must be a type"),
    ([], [], {"retain_fn": 3}, TypeError, "retain_fn must be callable"),
])
def test_argument_errors(roots, grads, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        run(roots, grads, **kw)


def test_argument_types_are_checked():
    with pytest.raises(TypeError):
        _C._run_graph((), [], False, True, None, None, Sink, _retain)
    with pytest.raises(TypeError):
        _C._run_graph([], [], False)


def test_malformed_graph_errors():
    log = []
    bad_edge = Rec("a", log, [("not", "a pair", 3)])
    with pytest.raises(TypeError, match="next_functions entries must be"):
        run([(bad_edge, 0)], [1])

    s = Sink("s", log)
    out_of_range = Rec("a", log, [(s, 5)])
    with pytest.raises(IndexError, match="gradient for output 5 of a node with 1 outputs"):
        run([(out_of_range, 0)], [1])

    class NotSeq(Rec):
        def _apply(self, grads):
            return 42

    with pytest.raises(TypeError, match="must return a sequence"):
        run([(NotSeq("n", log, [(s, 0)]), 0)], [1])

    class Rewire(Rec):
        def _apply(self, grads):
            self.next_functions = ((Sink("new", log), 0),)
            return [1]

    with pytest.raises(RuntimeError, match="next_functions changed during backward"):
        run([(Rewire("r", log, [(s, 0)]), 0)], [1])

    no_outputs = Rec("a", log, [])
    del no_outputs._num_outputs
    with pytest.raises(AttributeError):
        run([(no_outputs, 0)], [1])

    with pytest.raises(TypeError, match="sequence of"):
        n = Rec("a", log, [])
        n.next_functions = 5
        run([(n, 0)], [1])


def test_capture_position_errors():
    s = Sink("s", [])
    a = Rec("a", [], [(s, 0)])
    with pytest.raises(IndexError, match="capture position 4 out of range"):
        run([(a, 0)], [1], capture={(id(a), 0): [4]}, captured=[None])
    with pytest.raises(TypeError, match="capture positions must be a sequence"):
        run([(a, 0)], [1], capture={(id(a), 0): 7}, captured=[None])


def test_backward_failure_restores_grad_mode():
    x = shardopt.ones(3, requires_grad=True)

    class Fail(shardopt.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            raise KeyError("inside backward")

    y = Fail.apply(x).sum()
    assert grad_mode.is_grad_enabled()
    with pytest.raises(KeyError):
        y.backward()
    assert grad_mode.is_grad_enabled()


def test_real_graph_uses_accumulate_grad_type():
    x = shardopt.ones(2, requires_grad=True)
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    acc = (x * 1).grad_fn.next_functions[0][0]
    assert type(acc) is AccumulateGrad


# ------------------------------------------------------------------ _grad_adoptable


def test_grad_adoptable_rule():
    import numpy as np
    fresh = shardopt.ones(4, 3)
    # references: the local name and the call's argument slot
    assert _C._grad_adoptable(fresh, 2)
    assert not _C._grad_adoptable(fresh, 1)  # one reference more than allowed
    view = fresh[1:]
    assert not _C._grad_adoptable(view, 99)  # offset, and shares the storage
    del view
    assert _C._grad_adoptable(fresh, 2)
    alias = fresh.t()
    assert not _C._grad_adoptable(fresh, 99)  # another view of the storage
    del alias
    assert not _C._grad_adoptable(shardopt.ones(3, 4).t().contiguous().t(), 99)  # strided
    assert not _C._grad_adoptable(shardopt.from_numpy(np.ones(3, np.float32)), 99)
    assert not _C._grad_adoptable(shardopt.ones(3, requires_grad=True), 99)
    assert not _C._grad_adoptable(shardopt.ones(3, requires_grad=True) * 2, 99)  # history
    assert not _C._grad_adoptable(shardopt.ones(6)[:3].clone()[0:2], 99)  # part of a buffer


def test_grad_adoptable_errors():
    with pytest.raises(TypeError, match="takes 2 arguments"):
        _C._grad_adoptable(shardopt.ones(1))
    with pytest.raises(TypeError, match="grad must be a Tensor, not list"):
        _C._grad_adoptable([1.0], 3)
    with pytest.raises(TypeError):
        _C._grad_adoptable(shardopt.ones(1), "3")
