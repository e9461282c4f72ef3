"""``_remote_device``: a shard placement, "rank:<rank>/<device>", "<worker>/<device>" or
"<device>" (torch.distributed._remote_device).  Implemented in C (csrc/shard/remote_device.c);
``shardopt.distributed`` re-exports it under the torch name."""
from ._C import _remote_device

__all__ = ["_remote_device"]
