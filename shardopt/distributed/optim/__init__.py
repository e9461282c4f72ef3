"""shardopt.distributed.optim: optimizers that shard their state across a process group
(torch.distributed.optim)."""
from .zero_redundancy_optimizer import ZeroRedundancyOptimizer

__all__ = ["ZeroRedundancyOptimizer"]
