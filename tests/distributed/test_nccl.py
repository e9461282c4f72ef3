"""The NCCL backend: build availability and the clear error on a machine without a GPU;
collectives on one rank and Gloo with CUDA tensors (staged through host memory) when a GPU
is lent (marked cuda)."""
from datetime import timedelta

import numpy as np
import pytest

import shardopt
import shardopt.distributed as dist
from shardopt import _C
from shardopt.testing import MultiProcessTestCase, requires_gloo, with_comms

DTYPES = [shardopt.float32, shardopt.float64, shardopt.float16, shardopt.bfloat16,
          shardopt.int32, shardopt.int64, shardopt.bool]
HAS_CUDA = shardopt.cuda.is_available()
needs_nccl = pytest.mark.skipif(not dist.is_nccl_available(), reason="built without NCCL")


def make(values, dtype, device="cpu"):
    t = _C.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(dtype)
    return t.to(device) if device != "cpu" else t


def read(t):
    return t.cpu().to(shardopt.float64).numpy().reshape(-1)


def _init(tmp_path, backend, name="store"):
    dist.init_process_group(backend, init_method=f"file://{tmp_path}/{name}", rank=0,
                            world_size=1, timeout=timedelta(seconds=30))


def test_availability_matches_build():
    assert dist.is_nccl_available() == bool(getattr(_C, "_nccl_compiled", 0))
    if dist.is_nccl_available():
        assert _C._nccl_version() >= 21000  # bf16 and ncclAvg need NCCL >= 2.10


@pytest.mark.skipif(HAS_CUDA, reason="checks the machine-without-GPU path")
def test_nccl_without_gpu_raises_clearly(tmp_path):
    want = "CUDA is not available" if dist.is_nccl_available() else "built without NCCL"
    with pytest.raises(dist.DistBackendError, match=want):
        _init(tmp_path, "nccl")
    assert not dist.is_initialized()
    if dist.is_nccl_available():
        with pytest.raises(dist.DistBackendError, match="CUDA is not available"):
            _C.ProcessGroupNCCL(dist.FileStore(str(tmp_path / "s2"), 1), 0, 1, 5.0)
    # backend=None picks gloo without a GPU (DESIGN.md), and a nccl sub-group fails cleanly.
    _init(tmp_path, None, "store2")
    try:
        assert dist.get_backend() == "gloo"
        with pytest.raises(dist.DistBackendError, match=want):
            dist.new_group(backend="nccl")
        t = make([1.0, 2.0], shardopt.float32)
        dist.all_reduce(t)  # the default group still works
        assert read(t).tolist() == [1.0, 2.0]
    finally:
        dist.destroy_process_group()


@pytest.mark.cuda
@needs_nccl
def test_nccl_one_rank(tmp_path):
    _init(tmp_path, "nccl")
    try:
        assert dist.get_backend() == "nccl"
        cuda = "cuda:0"
        for dt in DTYPES:
            for n in (0, 1, 13):
                v = (np.arange(n) % 5 - 1).astype(np.float64)
                ref = read(make(v, dt))
                for op in (dist.ReduceOp.SUM, dist.ReduceOp.PRODUCT, dist.ReduceOp.MIN,
                           dist.ReduceOp.MAX, dist.ReduceOp.AVG):
                    t = make(v, dt, cuda)
                    if op == dist.ReduceOp.AVG and dt == shardopt.bool:
                        with pytest.raises(RuntimeError, match="AVG"):
                            dist.all_reduce(t, op=op)
                        continue
                    dist.all_reduce(t, op=op)
                    np.testing.assert_array_equal(read(t), ref, err_msg=f"{dt} {op} n={n}")
                t = make(v, dt, cuda)
                dist.broadcast(t, src=0)
                dist.reduce(t, dst=0)
                np.testing.assert_array_equal(read(t), ref)
                out = make(np.full(n, 9.0), dt, cuda)
                dist.all_gather_into_tensor(out, make(v, dt, cuda))
                np.testing.assert_array_equal(read(out), ref)
                lst = [make(np.full(n, 9.0), dt, cuda)]
                dist.all_gather(lst, make(v, dt, cuda))
                np.testing.assert_array_equal(read(lst[0]), ref)
                out = make(np.full(n, 9.0), dt, cuda)
                dist.reduce_scatter_tensor(out, make(v, dt, cuda))
                np.testing.assert_array_equal(read(out), ref)
                out = make(np.full(n, 9.0), dt, cuda)
                dist.scatter(out, [make(v, dt, cuda)], src=0)
                np.testing.assert_array_equal(read(out), ref)
                lst = [make(np.full(n, 9.0), dt, cuda)]
                dist.gather(make(v, dt, cuda), lst, dst=0)
                np.testing.assert_array_equal(read(lst[0]), ref)
                out = make(np.full(n, 9.0), dt, cuda)
                dist.all_to_all_single(out, make(v, dt, cuda))
                np.testing.assert_array_equal(read(out), ref)
        # non-contiguous tensors are staged on the device and written back
        nc = make(np.arange(6.0), shardopt.float32, cuda).reshape((2, 3)).t()
        dist.all_reduce(nc)
        np.testing.assert_array_equal(nc.cpu().numpy(), np.arange(6.0).reshape(2, 3).T)
        # async: ordered on the streams; wait() with a timeout blocks the host
        t = make(np.ones(1 << 20), shardopt.float32, cuda)
        w = dist.all_reduce(t, async_op=True)
        assert w.wait() and w.wait(timeout=timedelta(seconds=30))
        assert w.is_completed() and w.is_success() and w.exception() is None
        assert w.result()[0] is t
        dist.barrier()
        objs = [None]
        dist.all_gather_object(objs, {"a": 1})
        assert objs == [{"a": 1}]
        # CPU tensors on an NCCL group: a clear error naming the argument
        with pytest.raises(ValueError, match="tensor must be a CUDA tensor"):
            dist.all_reduce(make([1.0], shardopt.float32))
        with pytest.raises(ValueError, match="output_tensor must be a CUDA tensor"):
            dist.all_gather_into_tensor(make([1.0], shardopt.float32),
                                        make([1.0], shardopt.float32, cuda))
        with pytest.raises(ValueError, match="pass src"):
            dist.recv(make([1.0], shardopt.float32, cuda))
    finally:
        dist.destroy_process_group()


@requires_gloo()
class TestGlooCudaTensors(MultiProcessTestCase):
    """Gloo with CUDA tensors: staged through host memory, so two ranks share one GPU."""

    @property
    def world_size(self):
        return 2

    @pytest.mark.cuda
    @with_comms(backend="gloo")
    def test_gloo_cuda_tensors(self):
        r = self.rank
        t = make(np.arange(4.0) + r, shardopt.float32, "cuda:0")
        dist.all_reduce(t)
        assert t.is_cuda
        self.assertEqual(read(t), 2 * np.arange(4.0) + 1)
        out = make(np.zeros(8), shardopt.bfloat16, "cuda:0")
        dist.all_gather_into_tensor(out, make(np.full(4, r + 1.0), shardopt.bfloat16, "cuda:0"))
        self.assertEqual(read(out), np.repeat([1.0, 2.0], 4))
        b = make(np.full(3, float(r)), shardopt.int64, "cuda:0")
        w = dist.broadcast(b, src=1, async_op=True)
        w.wait()  # the host copy is written back to the device on wait()
        self.assertEqual(read(b), np.ones(3))
        rs = make(np.zeros(2), shardopt.float64, "cuda:0")
        dist.reduce_scatter_tensor(rs, make(np.arange(4.0), shardopt.float64, "cuda:0"))
        self.assertEqual(read(rs), 2 * np.arange(4.0)[2 * r:2 * r + 2])
