"""shardopt.sharded_tensor: torch.distributed._shard.sharded_tensor without PyTorch.

So far: Shard, ShardMetadata, TensorProperties and ShardedTensorMetadata.  ShardedTensor
and its factories come with the ShardedTensor layer.
"""
from .._C import ShardMetadata
from .metadata import ShardedTensorMetadata, TensorProperties
from .shard import Shard

__all__ = ["Shard", "ShardMetadata", "ShardedTensorMetadata", "TensorProperties"]
