"""torch.distributed.remote_device's path: ``_remote_device``, a shard placement
("rank:<rank>/<device>", "<worker>/<device>" or "<device>"), implemented in C
(csrc/shard/remote_device.c)."""
from shardopt._C import _remote_device

__all__ = ["_remote_device"]
