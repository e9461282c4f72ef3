"""Shard: a local tensor and its ShardMetadata (torch.distributed._shard.sharded_tensor.shard).

C type (csrc/shard/metadata.c).  ``Shard(tensor, metadata)`` checks that the tensor's size
equals ``metadata.shard_sizes`` and, unless the placement is None, that its device is the
placement's device; ``Shard.from_tensor_and_offsets(tensor, shard_offsets, rank)`` builds
the metadata from the tensor with placement ``rank:<rank>/<tensor.device>``.
"""
from .._C import Shard

__all__ = ["Shard"]
