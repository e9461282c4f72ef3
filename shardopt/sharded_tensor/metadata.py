"""TensorProperties and ShardedTensorMetadata (torch.distributed._shard.sharded_tensor.metadata).

Plain dataclasses: they carry Python objects (dtype, layout, memory format, Size) and are
built once per ShardedTensor, so C buys nothing here.  ``TensorProperties`` pickles its
memory format as an enum code (0 contiguous, 1 channels_last, 2 preserve), like torch.
"""
from dataclasses import dataclass, field
from enum import Enum

import shardopt as _so
from .._C import ShardMetadata
from .._tensor import Size

__all__ = ["MEM_FORMAT_ENCODING", "TensorProperties", "ShardedTensorMetadata", "ShardMetadata"]


class MEM_FORMAT_ENCODING(Enum):  # noqa: N801 - torch's name
    TORCH_CONTIGUOUS_FORMAT = 0
    TORCH_CHANNELS_LAST = 1
    TORCH_PRESERVE_FORMAT = 2


def _default_dtype():
    # captured once, at import, as torch's dataclass default is
    get = getattr(_so, "get_default_dtype", None)
    return get() if get is not None else _so.float32


@dataclass
class TensorProperties:
    """Properties used to create the local tensors of a ShardedTensor."""

    dtype: object = field(default=_default_dtype())
    layout: object = field(default=_so.strided)
    requires_grad: bool = False
    memory_format: object = field(default=_so.contiguous_format)
    pin_memory: bool = False

    def __getstate__(self):
        memory_format = self.memory_format
        if memory_format == _so.contiguous_format:
            code = MEM_FORMAT_ENCODING.TORCH_CONTIGUOUS_FORMAT
        elif memory_format == _so.channels_last:
            code = MEM_FORMAT_ENCODING.TORCH_CHANNELS_LAST
        elif memory_format == _so.preserve_format:
            code = MEM_FORMAT_ENCODING.TORCH_PRESERVE_FORMAT
        else:
            raise RuntimeError(f"Invalid torch.memory_format: {memory_format}")
        return (self.dtype, self.layout, self.requires_grad, code, self.pin_memory)

    def __setstate__(self, state):
        (self.dtype, self.layout, self.requires_grad, code, self.pin_memory) = state
        if code == MEM_FORMAT_ENCODING.TORCH_CONTIGUOUS_FORMAT:
            self.memory_format = _so.contiguous_format
        elif code == MEM_FORMAT_ENCODING.TORCH_CHANNELS_LAST:
            self.memory_format = _so.channels_last
        elif code == MEM_FORMAT_ENCODING.TORCH_PRESERVE_FORMAT:
            self.memory_format = _so.preserve_format
        else:
            raise RuntimeError(f"Invalid torch.memory_format encoding: {code}")

    @staticmethod
    def create_from_tensor(tensor):
        is_pinned = getattr(tensor, "is_pinned", None)
        return TensorProperties(
            dtype=tensor.dtype,
            layout=getattr(tensor, "layout", _so.strided),
            requires_grad=tensor.requires_grad,
            memory_format=_so.contiguous_format,
            pin_memory=bool(is_pinned()) if is_pinned is not None else False,
        )


@dataclass
class ShardedTensorMetadata:
    """Metadata of a ShardedTensor: every shard's ShardMetadata, the global size and the
    tensor properties."""

    shards_metadata: list = field(default_factory=list)
    size: Size = field(default=Size([]))
    tensor_properties: TensorProperties = field(default_factory=TensorProperties)
