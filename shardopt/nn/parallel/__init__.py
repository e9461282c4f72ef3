"""shardopt.nn.parallel: data-parallel training (torch.nn.parallel)."""
from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
