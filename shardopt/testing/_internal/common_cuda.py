"""torch.testing._internal.common_cuda's path: the CUDA availability flags distributed tests
read at import time (computed once, from shardopt.cuda)."""
from shardopt.testing._multiprocess import _cuda_device_count

__all__ = ["TEST_CUDA", "TEST_MULTIGPU", "CUDA_DEVICE", "TEST_CUDNN"]

_COUNT = _cuda_device_count()
TEST_CUDA = _COUNT > 0
TEST_MULTIGPU = _COUNT >= 2
CUDA_DEVICE = "cuda:0" if TEST_CUDA else None
TEST_CUDNN = False  # shardopt does not use cuDNN
