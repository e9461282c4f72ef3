"""torch.testing._internal.distributed._shard.sharded_tensor's path: ShardedTensorTestBase
(4 ranks), with_comms and TEST_GPU_NUM (implementation: shardopt.testing)."""
from shardopt.testing._multiprocess import with_comms  # noqa: F401
from shardopt.testing._sharded import TEST_GPU_NUM, ShardedTensorTestBase  # noqa: F401

__all__ = ["ShardedTensorTestBase", "with_comms", "TEST_GPU_NUM"]
