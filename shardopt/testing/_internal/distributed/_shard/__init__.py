"""torch.testing._internal.distributed._shard's path."""
