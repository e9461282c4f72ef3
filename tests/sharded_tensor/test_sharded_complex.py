"""ShardedTensors of complex64 / complex128 on 4 Gloo ranks: the factories over a
ChunkShardingSpec, local shards, gather() to a destination rank (Gloo moves the (re, im)
float pairs), all_reduce SUM of complex data, pickled state_dict save/load through the
module hooks, and copy_ between sharded tensors.  Values are checked against float64 NumPy
references built on every rank."""
import pickle

import numpy as np

import shardopt as torch
import shardopt.distributed as dist
from shardopt import sharded_tensor
from shardopt.sharded_tensor import pre_load_state_dict_hook, state_dict_hook
from shardopt.sharded_tensor._shard_chunk import _shard_tensor
from shardopt.sharding_spec import ChunkShardingSpec
from shardopt.testing import ShardedTensorTestBase, with_comms

gloo = with_comms(init_rpc=False, backend="gloo")


def row_spec(ranks=range(4), dim=0):
    return ChunkShardingSpec(dim=dim, placements=[f"rank:{r}/cpu" for r in ranks])


def reference(shape, dtype):
    """Distinct complex values (imag != real) so a lost or swapped half shows."""
    n = int(np.prod(shape))
    ref = (np.arange(n) + 1j * (np.arange(n) * -0.5 + 1000)).reshape(shape)
    return ref.astype(np.complex128 if dtype == torch.complex128 else np.complex64)


class TestShardedComplex(ShardedTensorTestBase):
    @gloo
    def test_factories_local_shards_and_gather(self):
        for dtype in (torch.cfloat, torch.cdouble):
            st = sharded_tensor.ones(row_spec(), 10, 6, dtype=dtype)
            self.assertEqual(st.dtype, dtype)
            local = st.local_tensor()
            self.assertEqual(local.dtype, dtype)
            self.assertTrue(np.array_equal(local.numpy(), np.ones((3 if self.rank < 3 else 1, 6))))
            z = sharded_tensor.zeros(row_spec(dim=1), 4, 9, dtype=dtype)
            self.assertEqual(z.local_tensor().numpy().tolist(),
                             np.zeros(z.local_tensor().shape).tolist())
            f = sharded_tensor.full(row_spec(), (8, 3), 2 - 5j, dtype=dtype)
            self.assertTrue(np.array_equal(f.local_tensor().numpy(), np.full((2, 3), 2 - 5j)))
            e = sharded_tensor.empty(row_spec(), 8, 2, dtype=dtype)
            self.assertEqual(tuple(e.local_tensor().shape), (2, 2))
            # rand draws re and im in [0, 1) independently
            torch.manual_seed(7)
            r = sharded_tensor.rand(row_spec(), 40, 10, dtype=dtype).local_tensor().numpy()
            self.assertTrue(((r.real >= 0) & (r.real < 1) & (r.imag >= 0) & (r.imag < 1)).all())
            self.assertFalse(np.array_equal(r.real, r.imag))

            # gather of exact, distinct values, on uneven and permuted placements
            for shape, ranks, dim in (((10, 6), range(4), 0), ((7, 5), [2, 0, 3, 1], 1)):
                ref = reference(shape, dtype)
                full = torch.from_numpy(ref.copy())
                st = _shard_tensor(full, ChunkShardingSpec(dim, [f"rank:{r}/cpu" for r in ranks]))
                for dst in (0, 3):
                    out = torch.zeros(*shape, dtype=dtype) if self.rank == dst else None
                    st.gather(dst, out)
                    if self.rank == dst:
                        self.assertEqual(out.dtype, dtype)
                        self.assertTrue(np.array_equal(out.numpy(), ref), f"{shape} dst={dst}")

    @gloo
    def test_collectives_move_complex(self):
        for dtype, npt in ((torch.cfloat, np.complex64), (torch.cdouble, np.complex128)):
            t = torch.tensor([complex(self.rank, 10 * self.rank + 1)] * 3, dtype=dtype)
            dist.all_reduce(t)
            expect = sum(complex(r, 10 * r + 1) for r in range(4))
            self.assertTrue(np.array_equal(t.numpy(), np.full(3, expect, npt)))
            outs = [torch.zeros(2, dtype=dtype) for _ in range(4)]
            dist.all_gather(outs, torch.tensor([complex(self.rank, -self.rank)] * 2, dtype=dtype))
            for r, o in enumerate(outs):
                self.assertTrue(np.array_equal(o.numpy(), np.full(2, complex(r, -r), npt)))
            b = torch.tensor([1 + 2j, 3 - 4j], dtype=dtype) if self.rank == 1 else \
                torch.zeros(2, dtype=dtype)
            dist.broadcast(b, src=1)
            self.assertTrue(np.array_equal(b.numpy(), np.array([1 + 2j, 3 - 4j], npt)))
            # uneven all_to_all_single: rank r sends r + 1 elements to each peer
            inp = torch.tensor([complex(self.rank, p) for p in range(4)
                                for _ in range(self.rank + 1)], dtype=dtype)
            out = torch.zeros(sum(r + 1 for r in range(4)), dtype=dtype)
            dist.all_to_all_single(out, inp, [r + 1 for r in range(4)], [self.rank + 1] * 4)
            expect = [complex(r, self.rank) for r in range(4) for _ in range(r + 1)]
            self.assertTrue(np.array_equal(out.numpy(), np.array(expect, npt)))
            # reduce_scatter_tensor (SUM) and AVG all_reduce
            rs_in = torch.tensor([complex(self.rank + i, -i) for i in range(8)], dtype=dtype)
            rs_out = torch.zeros(2, dtype=dtype)
            dist.reduce_scatter_tensor(rs_out, rs_in)
            expect = [sum(complex(r + i, -i) for r in range(4))
                      for i in (2 * self.rank, 2 * self.rank + 1)]
            self.assertTrue(np.array_equal(rs_out.numpy(), np.array(expect, npt)))
            avg = torch.tensor([complex(2 * self.rank, 4)], dtype=dtype)
            dist.all_reduce(avg, op=dist.ReduceOp.AVG)
            self.assertTrue(np.array_equal(avg.numpy(), np.array([3 + 4j], npt)))
            # MAX of complex values has no order: refused on every rank, naming the dtype
            with self.assertRaisesRegex(ValueError, "complex"):
                dist.all_reduce(t, op=dist.ReduceOp.MAX)

    @gloo
    def test_state_dict_and_copy(self):
        nn = torch.nn
        spec = row_spec()

        class Holder(nn.Module):
            def __init__(self, spec):
                super().__init__()
                self.st = sharded_tensor.rand(spec, 12, 4, dtype=torch.cdouble) if spec else None

        m = Holder(spec)
        m._register_state_dict_hook(state_dict_hook)
        loaded = pickle.loads(pickle.dumps(m.state_dict()))
        fresh = Holder(None)
        fresh._register_load_state_dict_pre_hook(pre_load_state_dict_hook, True)
        fresh.load_state_dict(loaded, strict=False)
        self.assertEqual(fresh.st.dtype, torch.cdouble)
        self.assertTrue(np.array_equal(fresh.st.local_tensor().numpy(),
                                       m.st.local_tensor().numpy()))

        # copy_ between sharded tensors of the same layout
        src = _shard_tensor(torch.from_numpy(reference((12, 4), torch.cfloat)), spec)
        dst = sharded_tensor.zeros(spec, 12, 4, dtype=torch.cfloat)
        dst.copy_(src)
        out = torch.zeros(12, 4, dtype=torch.cfloat) if self.rank == 0 else None
        dst.gather(0, out)
        if self.rank == 0:
            self.assertTrue(np.array_equal(out.numpy(), reference((12, 4), torch.cfloat)))
        self.assertTrue(torch.equal(dst, src))
