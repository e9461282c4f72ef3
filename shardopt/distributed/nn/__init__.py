"""shardopt.distributed.nn (torch.distributed.nn): collectives with autograd."""
from .functional import (all_gather, all_reduce, all_to_all, all_to_all_single,  # noqa: F401
                         reduce_scatter)

__all__ = ["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "all_to_all_single"]
