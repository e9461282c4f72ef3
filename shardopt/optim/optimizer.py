"""shardopt.optim.Optimizer: torch.optim.Optimizer's bookkeeping (param_groups, lazily
created per-param state, zero_grad, add_param_group, state_dict/load_state_dict) with
torch's messages and state_dict format (spec section 9).  The math is in C: subclasses make
one ``_C._fused_*_`` call per param group in ``step()``.

Deliberate difference from torch: the ``step`` counters of Adam/AdamW always live on the CPU
(float32, 0-d), also with ``fused=True``/``capturable=True``, where torch would put them on
the param's device.  Bias corrections are computed on the host from them, so ``step()``
never waits for a GPU.
"""

from __future__ import annotations

from typing import Any

from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from copy import deepcopy
import functools
from itertools import chain
import warnings

from .. import _C
from .._tensor import Tensor

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Singleton class representing a required parameter for an Optimizer."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()

_TENSOR_TYPE_NAMES = {
    "float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
    "bfloat16": "BFloat16Tensor", "int32": "IntTensor", "int64": "LongTensor",
    "bool": "BoolTensor",
}


def _typename(obj):
    """torch.typename: 'shardopt.FloatTensor' for tensors, 'module.QualName' otherwise."""
    if isinstance(obj, Tensor):
        name = _TENSOR_TYPE_NAMES.get(str(obj.dtype).split(".")[-1], "Tensor")
        prefix = "shardopt.cuda." if obj.device.type == "cuda" else "shardopt."
        return prefix + name
    module = getattr(obj, "__module__", "") or ""
    if hasattr(obj, "__qualname__"):
        qualname = obj.__qualname__
    elif hasattr(obj, "__name__"):
        qualname = obj.__name__
    else:
        module = obj.__class__.__module__ or ""
        qualname = obj.__class__.__qualname__
    if module in {"", "builtins"}:
        return qualname
    return f"{module}.{qualname}"


def _zeros_like(p):
    """A zero-filled tensor with p's shape, dtype and device (torch.zeros_like)."""
    return _C.empty(tuple(p.shape), dtype=p.dtype, device=p.device).zero_()


def _empty_like(p):
    return _C.empty(tuple(p.shape), dtype=p.dtype, device=p.device)


def _step_tensor(value=0.0):
    """torch's Adam `step`: a float32 0-d tensor on the CPU."""
    t = _C.empty((), dtype=_C.float32, device="cpu")
    t.fill_(float(value))
    return t


def _scalar(x, name):
    """A hyper-parameter as a Python float (a one-element Tensor is read once, on the host)."""
    if type(x) is float:
        return x
    if isinstance(x, Tensor):
        if x.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element")
        return float(x.item()) if hasattr(x, "item") else float(x.cpu().numpy().reshape(()))
    return float(x)


def _enable_grad():
    """shardopt.enable_grad() when autograd is present, else a no-op context."""
    from .. import __dict__ as pkg
    eg = pkg.get("enable_grad")
    if eg is not None:
        return eg()
    import contextlib
    return contextlib.nullcontext()


class Optimizer:
    r"""Base class for all optimizers (torch.optim.Optimizer).

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts (param
            groups; each needs a ``"params"`` entry).
        defaults (dict): default values of the optimization options, used by groups that do
            not set them.
    """

    def __init_subclass__(cls, **kwargs) -> None:
        # Wrap each subclass's own step() so registered step hooks run around it.
        super().__init_subclass__(**kwargs)
        impl = cls.__dict__.get("step")
        if impl is None or getattr(impl, "_so_hooked", False):
            return

        @functools.wraps(impl)
        def step(self, *args, **kwargs):
            if not (getattr(self, "_optimizer_step_pre_hooks", None)
                    or getattr(self, "_optimizer_step_post_hooks", None)):
                return impl(self, *args, **kwargs)
            return self._call_step(functools.partial(impl, self), args, kwargs)

        step._so_hooked = True
        cls.step = step

    def __init__(self, params, defaults) -> None:
        self.defaults = defaults
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()

        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be "
                "an iterable of Tensors or dicts, but got " + _typename(params)
            )

        self.state = defaultdict(dict)
        self.param_groups = []

        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]

        for param_group in param_groups:
            self.add_param_group(param_group)

    # ---- pickling / repr ----

    def __getstate__(self) -> dict[str, Any]:
        return {
            "defaults": self.defaults,
            "state": self.state,
            "param_groups": self.param_groups,
        }

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        if "_optimizer_step_pre_hooks" not in self.__dict__:
            self._optimizer_step_pre_hooks = OrderedDict()
        if "_optimizer_step_post_hooks" not in self.__dict__:
            self._optimizer_step_post_hooks = OrderedDict()
        self.defaults.setdefault("differentiable", False)

    def __repr__(self) -> str:
        format_string = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            format_string += "\n"
            format_string += f"Parameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    format_string += f"    {key}: {group[key]}\n"
        format_string += ")"
        return format_string

    # ---- state dict ----

    def state_dict(self) -> dict[str, Any]:
        """The optimizer state as ``{"state": {index: {...}}, "param_groups": [...]}``.

        Params are numbered sequentially across groups in group order (a repeated param
        keeps its first index); ``state`` holds only params that have state.  State tensors
        are the live ones (not copies), as in torch.
        """
        param_mappings = {}
        start_index = 0

        def pack_group(group):
            nonlocal start_index
            packed = {k: v for k, v in group.items() if k != "params"}
            param_mappings.update(
                {
                    id(p): i
                    for i, p in enumerate(group["params"], start_index)
                    if id(p) not in param_mappings
                }
            )
            packed["params"] = [param_mappings[id(p)] for p in group["params"]]
            start_index += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {
            (param_mappings[id(k)] if isinstance(k, Tensor) else k): v
            for k, v in self.state.items()
        }
        return {"state": packed_state, "param_groups": param_groups}

    @staticmethod
    def _process_value_according_to_param_policy(param, value, param_id, param_groups,
                                                  key=None):
        if key == "step":
            # shardopt keeps step counters on the CPU (see the module docstring)
            if value.device.type != "cpu" or str(value.dtype) not in (
                    "shardopt.float32", "shardopt.float64"):
                return value.to(dtype=_C.float32, device="cpu")
            return value
        if param.is_floating_point():
            return value.to(dtype=param.dtype, device=param.device)
        return value.to(device=param.device)

    def load_state_dict(self, state_dict) -> None:
        """Load a state dict made by :meth:`state_dict` (torch's checks and casts)."""
        state_dict = state_dict.copy()
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])

        if len(groups) != len(saved_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups"
            )
        param_lens = (len(g["params"]) for g in groups)
        saved_lens = (len(g["params"]) for g in saved_groups)
        if any(p_len != s_len for p_len, s_len in zip(param_lens, saved_lens)):
            raise ValueError(
                "loaded state dict contains a parameter group "
                "that doesn't match the size of optimizer's group"
            )

        id_map = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved_groups),
                chain.from_iterable(g["params"] for g in groups),
            )
        )

        def _cast(param, value, param_id=None, param_groups=None, key=None):
            if isinstance(value, Tensor):
                return Optimizer._process_value_according_to_param_policy(
                    param, value, param_id, param_groups, key)
            elif isinstance(value, dict):
                return {
                    k: _cast(param, v, param_id=param_id, param_groups=param_groups, key=k)
                    for k, v in value.items()
                }
            elif isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
                return type(value)(
                    _cast(param, v, param_id=param_id, param_groups=param_groups)
                    for v in value
                )
            else:
                return value

        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _cast(param, v, param_id=k,
                                     param_groups=state_dict["param_groups"])
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups)]
        self.__setstate__({"state": state, "param_groups": param_groups})

    # ---- gradients and groups ----

    def zero_grad(self, set_to_none=True) -> None:
        """Reset the gradients of all optimized tensors (to None by default, as torch >= 2.0)."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if getattr(g, "grad_fn", None) is not None:
                        g = g.detach()
                        p.grad = g
                    else:
                        g.requires_grad = False
                    g.zero_()

    def step(self, closure=None) -> Any:
        """Perform a single optimization step (subclasses implement it)."""
        raise NotImplementedError

    def _run_closure(self, closure):
        if closure is None:
            return None
        with _enable_grad():
            return closure()

    def register_step_pre_hook(self, hook) -> _Handle:
        """hook(optimizer, args, kwargs) runs before each step(); returns a removable handle."""
        return _Handle(self._optimizer_step_pre_hooks, hook)

    def register_step_post_hook(self, hook) -> _Handle:
        """hook(optimizer, args, kwargs) runs after each step(); returns a removable handle."""
        return _Handle(self._optimizer_step_post_hooks, hook)

    def _call_step(self, impl, args, kwargs):
        for hook in list(self._optimizer_step_pre_hooks.values()):
            result = hook(self, args, kwargs)
            if result is not None:
                if isinstance(result, tuple) and len(result) == 2:
                    args, kwargs = result
                else:
                    raise RuntimeError(
                        f"{hook} must return None or a tuple of (new_args, new_kwargs), "
                        f"but got {result}."
                    )
        out = impl(*args, **kwargs)
        for hook in list(self._optimizer_step_post_hooks.values()):
            hook(self, args, kwargs)
        return out

    def add_param_group(self, param_group) -> None:
        """Add a param group (a dict with "params" and optional per-group options)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")

        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but "
                "the ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            param_group["params"] = list(params)

        extracted_param_tensors = []
        extracted_param_names = []
        for param in param_group["params"]:
            if isinstance(param, tuple):
                extracted_param_names.append(param[0])
                extracted_param_tensors.append(param[1])
            else:
                extracted_param_tensors.append(param)

        param_group["params"] = extracted_param_tensors
        if len(extracted_param_names) != 0:
            if len(extracted_param_names) == len(extracted_param_tensors):
                param_group["param_names"] = extracted_param_names
            else:
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are missing"
                )

        for param in param_group["params"]:
            if not isinstance(param, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, "
                    "but one of the params is " + _typename(param)
                )
            if not self.defaults.get("differentiable", None) and not (
                getattr(param, "is_leaf", True) or getattr(param, "retains_grad", False)
            ):
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization parameter {name}"
                )
            else:
                param_group.setdefault(name, default)

        # identity sets (a Tensor's == is elementwise; only its identity matters here)
        params = param_group["params"]
        if len(params) != len({id(p) for p in params}):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "in future, this will cause an error; "
                "see github.com/pytorch/pytorch/issues/40967 for more information",
                stacklevel=3,
            )

        param_set = set()
        for group in self.param_groups:
            param_set.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                current_group_txt = (
                    "with names" if "param_names" in param_group else "without names"
                )
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {current_group_txt} to the optimizer"
                )

        if not param_set.isdisjoint(id(p) for p in param_group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")

        self.param_groups.append(param_group)


class _Handle:
    """A removable hook handle (torch.utils.hooks.RemovableHandle's remove())."""

    _next_id = 0

    def __init__(self, hooks, hook):
        self._hooks = hooks
        self.id = _Handle._next_id
        _Handle._next_id += 1
        hooks[self.id] = hook

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
