"""shardopt.distributed.all_to_all (list form) and shardopt.distributed.nn.functional (the
collectives autograd differentiates through) on 4 Gloo ranks.

Values are rank-dependent integers-as-floats, so forward results are exact.  Gradients are
checked against the adjoint of each collective written out by hand: with rank r's loss
sum(out_r * c_r) (c_r known to every rank) and torch's objective (the sum of every rank's
loss), d/d(input of rank r) is
  all_reduce:     sum_k c_k
  all_gather:     sum_k c_k[r]               (c_k[j]: rank k's coefficient for output j)
  reduce_scatter: c_j for input j (the coefficient of the rank that receives piece j)
  all_to_all:     c_j[r] for input j         (what rank j received from r)
"""
import zlib

import numpy as np

import shardopt as torch
import shardopt.distributed as dist
import shardopt.distributed.nn.functional as dnn
from shardopt.testing import MultiProcessTestCase, with_comms

gloo = with_comms(init_rpc=False, backend="gloo")


def coef(*key, shape):
    rs = np.random.RandomState(zlib.crc32(repr(key).encode()))  # the same on every rank
    return rs.standard_normal(shape)


def t64(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


class TestAllToAllList(MultiProcessTestCase):
    @gloo
    def test_uneven_sizes_shapes_and_dtypes(self):
        r, w = self.rank, self.world_size
        for dtype in (torch.float32, torch.int64):
            # rank r sends (r + j) % 3 rows of 2 to rank j (zero-size included)
            ins = [(torch.ones(((r + j) % 3, 2)) * (10 * r + j)).to(dtype) for j in range(w)]
            outs = [torch.full(((j + r) % 3, 2), -1.0).to(dtype) for j in range(w)]
            dist.all_to_all(outs, ins)
            for j in range(w):
                want = np.full(((j + r) % 3, 2), 10 * j + r)
                np.testing.assert_array_equal(outs[j].numpy(), want)
        # async
        ins = [torch.full((3,), float(r)) for _ in range(w)]
        outs = [torch.empty((3,)) for _ in range(w)]
        work = dist.all_to_all(outs, ins, async_op=True)
        work.wait()
        self.assertEqual([o.numpy().tolist() for o in outs], [[float(j)] * 3 for j in range(w)])
        with self.assertRaisesRegex(ValueError, "must be a list of 4 tensors"):
            dist.all_to_all(outs[:2], ins)
        with self.assertRaisesRegex(TypeError, r"input_tensor_list\[1\] must be a Tensor"):
            dist.all_to_all(outs, [ins[0], 3.0, ins[2], ins[3]])
        with self.assertRaisesRegex(ValueError, "share one dtype"):
            dist.all_to_all(outs, [ins[0], ins[1].double(), ins[2], ins[3]])


class TestAutogradCollectives(MultiProcessTestCase):
    @gloo
    def test_forward_and_adjoint_gradients(self):
        r, w = self.rank, self.world_size
        shape = (2, 3)
        base = lambda k: np.arange(6, dtype=np.float64).reshape(shape) + 100 * k  # noqa: E731

        # all_reduce
        x = t64(base(r)).requires_grad_(True)
        y = dnn.all_reduce(x)
        np.testing.assert_array_equal(y.detach().numpy(), sum(base(k) for k in range(w)))
        (y * t64(coef("ar", r, shape=shape))).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), sum(coef("ar", k, shape=shape)
                                                       for k in range(w)), rtol=1e-12)
        np.testing.assert_array_equal(x.detach().numpy(), base(r))  # input not modified

        # all_gather
        x = t64(base(r)).requires_grad_(True)
        outs = dnn.all_gather(x)
        self.assertEqual(len(outs), w)
        for j, o in enumerate(outs):
            np.testing.assert_array_equal(o.detach().numpy(), base(j))
        sum((o * t64(coef("ag", r, j, shape=shape))).sum() for j, o in enumerate(outs)).backward()
        np.testing.assert_allclose(x.grad.numpy(), sum(coef("ag", k, r, shape=shape)
                                                       for k in range(w)), rtol=1e-12)

        # reduce_scatter
        xs = [t64(base(r) + j).requires_grad_(True) for j in range(w)]
        y = dnn.reduce_scatter(torch.empty(shape, dtype=torch.float64), xs)
        np.testing.assert_array_equal(y.detach().numpy(), sum(base(k) + r for k in range(w)))
        (y * t64(coef("rs", r, shape=shape))).sum().backward()
        for j in range(w):
            np.testing.assert_allclose(xs[j].grad.numpy(), coef("rs", j, shape=shape),
                                       rtol=1e-12)

        # all_to_all (uneven: rank r sends j + 1 rows to rank j)
        xs = [t64(np.full((j + 1, 2), 10.0 * r + j)).requires_grad_(True) for j in range(w)]
        outs = [torch.empty((r + 1, 2), dtype=torch.float64) for _ in range(w)]
        got = dnn.all_to_all(outs, xs)
        for j in range(w):
            np.testing.assert_array_equal(got[j].detach().numpy(), np.full((r + 1, 2), 10.0 * j + r))
        sum((g * t64(coef("a2a", r, j, shape=(r + 1, 2)))).sum() for j, g in enumerate(got)).backward()
        for j in range(w):
            np.testing.assert_allclose(xs[j].grad.numpy(), coef("a2a", j, r, shape=(j + 1, 2)),
                                       rtol=1e-12)

        # all_to_all_single with split sizes (rank r sends j + 1 rows to rank j)
        rows_in = [j + 1 for j in range(w)]
        x = t64(np.repeat(np.arange(w) + 10.0 * r, rows_in)[:, None] * np.ones((1, 2)))
        x.requires_grad_(True)
        out = torch.empty(((r + 1) * w, 2), dtype=torch.float64)
        y = dnn.all_to_all_single(out, x, [r + 1] * w, rows_in)
        want = np.repeat(10.0 * np.arange(w) + r, r + 1)[:, None] * np.ones((1, 2))
        np.testing.assert_array_equal(y.detach().numpy(), want)
        (y * t64(coef("a2as", r, shape=y.shape))).sum().backward()
        want_grad = np.concatenate([coef("a2as", j, shape=((j + 1) * w, 2))[r * (j + 1):(r + 1) * (j + 1)]
                                    for j in range(w)])
        np.testing.assert_allclose(x.grad.numpy(), want_grad, rtol=1e-12)

        with self.assertRaisesRegex(TypeError, "'tensor' must be a Tensor"):
            dnn.all_reduce([1.0])
        with self.assertRaisesRegex(ValueError, "must hold 4 tensors"):
            dnn.reduce_scatter(torch.empty(shape), [torch.empty(shape)])
