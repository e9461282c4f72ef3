"""torch.testing._internal.distributed's path."""
