"""DDP + ZeRO-1 and ZeRO-2 on CUDA parameters: NCCL ranks (one GPU per rank), and one Gloo
rank on one GPU (Gloo stages CUDA tensors through the host); training equals the
single-process CPU reference on the concatenated batch.  Skipped without CUDA and, through
with_comms(backend="nccl"), without a GPU per rank."""
import pytest

import shardopt as so
from shardopt import optim
from shardopt.distributed.optim import ZeroRedundancyOptimizer as ZeRO
from shardopt.nn.parallel import DistributedDataParallel as DDP
from shardopt.testing import MultiProcessTestCase, run_tests, with_comms

from _dp_common import Net, assert_close_params, batch, loss_fn, reference

STEPS = 3


def _adam(params):
    return optim.Adam(params, lr=0.01)


class _CudaTraining:
    def setUp(self):
        super().setUp()
        self._spawn_processes()

    def _train(self, stage):
        dev = f"cuda:{self.rank}"
        so.cuda.set_device(self.rank)
        model = Net(seed=self.rank).to(dev)
        if stage == 1:
            fwd = DDP(model, device_ids=[self.rank])
            opt = ZeRO(fwd.parameters(), optim.Adam, lr=0.01)
        else:
            fwd = model
            opt = ZeRO(model.parameters(), optim.Adam, lr=0.01, zero_stage=2,
                       bucket_cap_mb=40 * 4 / 2**20)
        for step in range(STEPS):
            x, y = batch(step, self.world_size, self.rank)
            opt.zero_grad()
            loss_fn(fwd(x.to(dev)), y.to(dev)).backward()
            opt.step()
        got = {n: p.detach().cpu().numpy() for n, p in model.named_parameters()}
        assert_close_params(self, got, reference(self.world_size, STEPS, _adam))



@pytest.mark.cuda
class TestDataParallelNCCL(_CudaTraining, MultiProcessTestCase):
    @property
    def world_size(self):
        return 2

    @with_comms(backend="nccl")
    def test_ddp_zero1(self):
        self._train(1)

    @with_comms(backend="nccl")
    def test_zero2(self):
        self._train(2)


@pytest.mark.cuda
class TestDataParallelCudaGloo(_CudaTraining, MultiProcessTestCase):
    @property
    def world_size(self):
        return 1

    @with_comms(backend="gloo")
    def test_ddp_zero1(self):
        self._train(1)

    @with_comms(backend="gloo")
    def test_zero2(self):
        self._train(2)


if __name__ == "__main__":
    run_tests()
