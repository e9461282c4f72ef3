"""Tensor layouts and memory formats: torch-like singletons (``shardopt.strided``,
``shardopt.contiguous_format``...).

shardopt tensors are always strided; these objects exist so that code written against
torch's API (TensorProperties, ``create_from_tensor``, factory keyword arguments) can name
them, compare them and pickle them.  They pickle by name, so unpickling gives back the
same singleton.
"""

__all__ = ["layout", "memory_format", "strided", "sparse_coo", "contiguous_format",
           "channels_last", "preserve_format"]


class _Named:
    __slots__ = ("_name",)

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return f"shardopt.{self._name}"

    def __reduce__(self):
        # pickle looks the name up in this module: the same singleton comes back
        return self._name


class layout(_Named):  # noqa: N801 - torch.layout
    """The memory layout of a tensor (only ``shardopt.strided`` is backed by tensors)."""
    __slots__ = ()


class memory_format(_Named):  # noqa: N801 - torch.memory_format
    """A requested memory format (shardopt allocates contiguous tensors)."""
    __slots__ = ()


strided = layout("strided")
sparse_coo = layout("sparse_coo")
contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
preserve_format = memory_format("preserve_format")
