"""shardopt: sharded tensors and a sharded optimizer in C, with PyTorch's
``torch.distributed._shard`` API and no dependency on PyTorch.

``import shardopt as torch`` covers the tensor calls the ported tests use.
"""
import builtins as _builtins

from . import _C
from ._C import bfloat16, float16, float32, float64, int32, int64, device, dtype

bool = _C.bool  # noqa: A001 - torch exposes torch.bool too
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
# complex64 / complex128 tensors live on the CPU (shardopt/_ops/complex_math.py); int8,
# int16 and uint8 exist as names only (pickles, dtype checks): creating a tensor of one
# raises TypeError naming it
from ._C import complex64, complex128, int8, int16, uint8  # noqa: E402
cfloat = complex64
cdouble = complex128
short = int16

from ._tensor import Size, Tensor  # noqa: E402
from ._layout import channels_last, contiguous_format, layout, memory_format, preserve_format, sparse_coo, strided  # noqa: E402,F401
from ._ops import *  # noqa: E402,F401,F403  (functional forms: add, matmul, zeros, rand...)
from .autograd._functional import *  # noqa: E402,F401,F403  (differentiable ones replace them)
from .autograd import enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled  # noqa: E402,F401
from . import overrides as _overrides  # noqa: E402

# shardopt's public functions take part in the __torch_function__ protocol (a tensor-like
# argument such as a ShardedTensor gets the call dispatched to its class): this package
# publishes them so, once, here where its namespace is defined.
globals().update(_overrides.dispatchable_all(globals(), list(globals())))
from . import autograd, nn  # noqa: E402
from . import cuda  # noqa: E402
from . import optim  # noqa: E402
from . import serialization  # noqa: E402
from .serialization import load, save  # noqa: E402,F401  (torch.save / torch.load)
from . import distributed  # noqa: E402
from . import futures  # noqa: E402  (torch.futures: RPC's Future)
from . import sharding_spec, sharded_tensor  # noqa: E402
from .sharded_tensor._shard_api import shard_parameter  # noqa: E402,F401  (torch.distributed._shard.shard_parameter)
from . import sharded_optim, sharding_plan  # noqa: E402
from .sharding_plan import shard_module  # noqa: E402,F401  (torch.distributed._shard.shard_module)

del _builtins
