"""shardopt.distributed.checkpoint (torch.distributed.checkpoint): distributed checkpoints
that reshard on load and are never torn.

``save(state_dict, checkpoint_id=...)`` writes one directory from every rank (each rank its
shards, into a temp directory committed atomically); ``load(state_dict, checkpoint_id=...)``
fills the state dict in place whatever the sharding and number of ranks that saved it,
reading only the byte ranges each rank needs.  ``state_dict.get_state_dict`` /
``set_state_dict`` give model + optimizer state dicts keyed by parameter name, with the
optimizer state of a sharded parameter sharded like it.  Format: metadata.py; consolidation
tool: ``python -m shardopt.distributed.checkpoint consolidate CKPT OUT``.
"""
from ._collectives import CheckpointError
from .api import load, save
from .metadata import Metadata

__all__ = ["save", "load", "Metadata", "CheckpointError"]
