"""shard_parameter (torch.distributed._shard.api.shard_parameter, tensor-subclass era).

Kept in Python on purpose: after three attribute checks it is two calls --
``_shard_tensor`` (shardopt.sharded_tensor: the collective src_rank/spec agreement check
and the scatter) and ``module.register_parameter`` (Python, shardopt.nn) -- so a C version would
only be calls back into Python.

Result (spec section 5, current era): ``module.<param_name>`` is the ShardedTensor marked
as a parameter (``nn.Parameter(st)``), so ``named_parameters()``/``parameters()`` list it
and ``isinstance(module.<param_name>, ShardedTensor)`` holds.  As in torch,
``register_parameter`` raises ``KeyError("attribute '<name>' already exists")`` when the
name was a plain attribute or a buffer rather than a parameter.
"""
from .. import _C

from ._shard_chunk import _shard_tensor

__all__ = ["shard_parameter"]


def shard_parameter(module, param_name, sharding_spec, src_rank=0, process_group=None):
    """Shard ``module.<param_name>`` with ``sharding_spec``, scattering from ``src_rank`` (a
    rank of ``process_group``, default the global group), and register the ShardedTensor as
    that parameter.  Collective: every rank of the group must call it with the same
    ``src_rank`` and spec (a mismatch raises ValueError on every rank)."""
    from ..nn import Parameter  # noqa: PLC0415 - shardopt.nn imports the tensor layer

    # Local checks do not raise yet: their error travels through _shard_tensor's exchange
    # so that every rank raises, not only the one with the bad module (no rank is left
    # waiting in the collective).
    error, tensor = None, None
    if not hasattr(module, param_name):
        error = AttributeError(f"{type(module).__name__} has no attribute `{param_name}`")
    else:
        tensor = getattr(module, param_name)
        if not isinstance(tensor, _C.TensorBase):
            error = ValueError(f"Expected {type(module).__name__}.{param_name} to be a Tensor, "
                               f"but found {type(tensor).__name__}")
        elif not tensor.is_contiguous():
            error = ValueError(f"param: {param_name} is not a contiguous Tensor")

    st = _shard_tensor(tensor, sharding_spec, src_rank, process_group, _local_error=error)
    module.register_parameter(param_name, Parameter(st))
