"""interop ops (filled in by its owner)."""
__all__ = []
TENSOR_METHODS = {}
