"""broadcast_coalesced: make a list of tensors equal to a source rank's, one flat broadcast per
dtype/device (DistributedDataParallel's and ZeroRedundancyOptimizer(zero_stage=2)'s start
from rank 0's parameters)."""

from __future__ import annotations

from typing import Any

from .. import _C
from ..autograd import grad_mode
from . import distributed_c10d as c10d


def broadcast_coalesced(tensors, pg, src=0) -> None:
    """Broadcast tensors from ``src`` (a group rank), one flat broadcast per dtype/device."""
    groups: dict[Any, list] = {}
    for t in tensors:
        groups.setdefault((t.dtype, str(t.device)), []).append(t)
    with grad_mode.no_grad():
        for ts in groups.values():
            total = sum(t.numel() for t in ts)
            flat = _C.empty((total,), dtype=ts[0].dtype, device=ts[0].device)
            off = 0
            for t in ts:
                n = t.numel()
                flat[off:off + n].view(tuple(t.shape)).copy_(t)
                off += n
            c10d.broadcast(flat, src=c10d.get_global_rank(pg, src), group=pg)
            off = 0
            for t in ts:
                n = t.numel()
                t.copy_(flat[off:off + n].view(tuple(t.shape)))
                off += n
