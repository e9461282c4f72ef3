"""Chunk rule and shard-layout validators (torch.distributed._shard.sharding_spec._internals),
implemented in C (csrc/shard/validate.c).

- ``get_split_size(dim_size, chunks)``: ceil(dim_size / chunks).
- ``get_chunked_dim_size(dim_size, split_size, idx)``: length of chunk ``idx`` (0 past the end).
- ``get_chunk_sharding_params(sharding_dim_size, world_size, spec, rank)``: (start, length)
  of ``rank``'s chunk; ValueError if ``rank`` has no placement (torch returns a wrong answer).
- ``validate_non_overlapping_shards_metadata(shards)``: "Shards a and b overlap"; sort +
  sweep; zero-volume shards are exempt.
- ``check_tensor(shards_metadata, tensor_dims)``: rank, bounds and total-volume checks;
  zero-volume shards are exempt from the bounds check.
"""
from .._C import (  # noqa: F401
    check_tensor,
    get_chunk_sharding_params,
    get_chunked_dim_size,
    get_split_size,
    validate_non_overlapping_shards_metadata,
)

__all__ = ["check_tensor", "get_chunk_sharding_params", "get_chunked_dim_size",
           "get_split_size", "validate_non_overlapping_shards_metadata"]
