"""Functional and Tensor-method surfaces of the C ops, one module per area.

Each area module defines ``__all__`` (module-level functions such as ``shardopt.add``)
and ``TENSOR_METHODS`` (name -> function installed on ``shardopt.Tensor``).
"""
from . import complex_math, composite, creation, elementwise, indexing, interop, reduce, softmax_ops  # noqa: F401
from .creation import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .interop import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403  (after elementwise: its where() takes 1 or 3 args)
from .softmax_ops import *  # noqa: F401,F403
from .complex_math import *  # noqa: F401,F403
from .composite import *  # noqa: F401,F403  (last: torch functions composed from the ops above)

AREAS = (creation, elementwise, interop, reduce, indexing, softmax_ops, complex_math, composite)
