"""The differentiable module-level functions (shardopt.add, shardopt.matmul, shardopt.cat...),
re-exported by ``shardopt/__init__.py`` over the raw ones of ``shardopt._ops``."""
from ._setup import FUNCTIONS as _FUNCTIONS

globals().update(_FUNCTIONS)
__all__ = sorted(_FUNCTIONS)
