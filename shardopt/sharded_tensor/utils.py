"""Helpers of torch.distributed._shard.sharded_tensor.utils that user code and tests call:
placement parsing against a process group and size flattening."""
from .. import _C
from .._tensor import Size
from .api import _flatten_size, _validate_placement

__all__: list = []


def _parse_and_validate_remote_device(pg, remote_device):
    """(global rank, device) of a placement, checked against ``pg`` (ValueError for a
    None placement or a rank outside the group; RuntimeError for a worker name: no RPC)."""
    rank = _validate_placement(pg, remote_device)
    pl = remote_device if isinstance(remote_device, _C._remote_device) else _C._remote_device(remote_device)
    return rank, pl.device()


def _flatten_tensor_size(size) -> Size:
    """``size`` given as ints or as one sequence, as a Size."""
    dims = _flatten_size(tuple(size))
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError(f"size has to be a sequence of ints, found: {dims}")
    return Size(dims)
