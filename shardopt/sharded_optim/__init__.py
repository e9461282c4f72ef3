"""shardopt.sharded_optim: torch.distributed._shard.sharded_optim without PyTorch.

``named_params_with_sharded_tensor`` and the core of ``ShardedOptimizer`` are C
(csrc/shard/sharded_optim.c).  ``ShardedOptimizer`` subclasses that C type and
``shardopt.optim.Optimizer`` (whose ``__init__`` it never calls, as torch's does not), so
``isinstance(opt, shardopt.optim.Optimizer)`` holds.

ShardedOptimizer(named_params, optimizer_class, *args, **kwargs)
    ``named_params`` is a mapping name -> Tensor | ShardedTensor (for example
    ``dict(model.named_parameters())`` or ``dict(named_params_with_sharded_tensor(model))``).
    The inner optimizer ``optimizer_class(tensors, *args, **kwargs)`` is built over the flat
    list of local tensors: a Tensor as is, a ShardedTensor as its local shard tensors in local
    order.  Gradients are expected on those local tensors.

    - ``named_params``: the mapping as passed; ``param_groups``, ``state``, ``defaults``: the
      inner optimizer's own objects.
    - ``zero_grad(set_to_none=True)`` and ``step(closure=None)`` delegate; ``step`` returns
      None (torch drops the closure's loss too).

    Beyond torch (which raises NotImplementedError for these three):

    - ``state_dict()``: this rank's state keyed by parameter name -- a dict per Tensor, a
      list of dicts (one per local shard) per ShardedTensor --, the param groups'
      hyper-parameters with ``params`` as names, and under ``"layouts"`` each parameter's
      layout (global size; for a ShardedTensor every shard's offsets, sizes and placement and
      the local shards').  State tensors are the live ones, as in torch.
    - ``load_state_dict(sd)``: checks group membership and every layout first and raises a
      ValueError naming the parameter and showing both layouts if the checkpoint was made
      with another sharding; then loads, casting state tensors to each param's device and
      dtype (``step`` counters stay float32 on the CPU).
    - ``add_param_group(group)``: ``group["params"]`` may be a mapping name -> Tensor |
      ShardedTensor, a list of values or of ``(name, value)`` pairs; unnamed values are named
      ``"param_groups.<g>.<i>"``.  Names must be unique across the optimizer.
      ``named_params`` is not changed; ``param_names`` lists every name.
"""
from .. import _C
from ..optim import Optimizer

named_params_with_sharded_tensor = _C.named_params_with_sharded_tensor

__all__ = ["ShardedOptimizer", "named_params_with_sharded_tensor"]


class ShardedOptimizer(_C.ShardedOptimizerBase, Optimizer):
    """ShardedOptimizer(named_params, optimizer_class, *args, **kwargs): an optimizer over
    the local shards of ShardedTensors (and plain Tensors); see shardopt.sharded_optim."""

    def __getstate__(self):
        raise TypeError("ShardedOptimizer cannot be pickled; save state_dict() instead")

    def __repr__(self):
        return Optimizer.__repr__(self)
