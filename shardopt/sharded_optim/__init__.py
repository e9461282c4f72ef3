"""shardopt.sharded_optim: torch.distributed._shard.sharded_optim without PyTorch.

``ShardedOptimizer`` (api.py) subclasses ``_C.ShardedOptimizerBase`` (the data it owns,
csrc/shard/sharded_optim.c) and
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
from typing import Iterator, Tuple

from .api import ShardedOptimizer

__all__ = ["ShardedOptimizer", "named_params_with_sharded_tensor"]


def named_params_with_sharded_tensor(module, prefix: str = "",
                                     recurse: bool = True) -> Iterator[Tuple[str, object]]:
    """(name, param) over the ShardedTensors held in the ``vars()`` of ``module`` and its
    submodules (identity de-duplicated), then everything ``module.named_parameters()``
    yields (which ignores ``prefix`` and ``recurse``: torch's quirk).

    Args:
        module: the root module.
        prefix: prepended to the names of the ShardedTensor attributes.
        recurse: also visit submodules.
    """
    from ..sharded_tensor import ShardedTensor  # noqa: PLC0415 (layer beside this one)

    modules = module.named_modules(prefix=prefix) if recurse else [(prefix, module)]
    memo, out = set(), []
    for mod_prefix, mod in modules:
        for name, val in vars(mod).items():
            if isinstance(val, ShardedTensor) and id(val) not in memo:
                memo.add(id(val))
                out.append((mod_prefix + ("." if mod_prefix else "") + name, val))
    out.extend(module.named_parameters())
    return iter(out)
