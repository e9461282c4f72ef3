"""Flattening a nested state dict into "."-joined keys (torch's traverse_state_dict rule).

Mappings are always descended; lists and tuples only when they hold a tensor somewhere
below (so ``param_groups`` -- lists of dicts of numbers and names -- stays one value).
Every leaf is a ShardedTensor, a Tensor, or any other object.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator, List, Tuple

from ... import _C

__all__ = ["flatten", "set_leaf", "is_sharded"]


def _sharded_tensor_class():
    from ...sharded_tensor import ShardedTensor  # noqa: PLC0415  (the layer above dist)
    return ShardedTensor


def is_sharded(v) -> bool:
    return isinstance(v, _sharded_tensor_class())


def _holds_tensor(v) -> bool:
    if isinstance(v, (_C.TensorBase, _sharded_tensor_class())):
        return True
    if isinstance(v, Mapping):
        return any(_holds_tensor(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(_holds_tensor(x) for x in v)
    return False


def _walk(v, path: Tuple) -> Iterator[Tuple[Tuple, Any]]:
    if isinstance(v, Mapping):
        for k, x in v.items():
            yield from _walk(x, path + (k,))
    elif isinstance(v, (list, tuple)) and _holds_tensor(v):
        for i, x in enumerate(v):
            yield from _walk(x, path + (i,))
    else:
        yield path, v


def flatten(state_dict) -> List[Tuple[str, Tuple, Any]]:
    """[(key, path, leaf)]; ValueError if two paths give the same key."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a dict, but got {type(state_dict).__name__}")
    out, seen = [], {}
    for path, leaf in _walk(state_dict, ()):
        key = ".".join(str(p) for p in path)
        if key in seen:
            raise ValueError(f"state_dict: the nested keys {seen[key]!r} and {path!r} both "
                             f"flatten to {key!r}")
        seen[key] = path
        out.append((key, path, leaf))
    return out


def set_leaf(state_dict, path: Tuple, value) -> None:
    """Replace the leaf at `path` (a tuple on the way is rebuilt in its parent)."""
    parents = [state_dict]
    for p in path[:-1]:
        parents.append(parents[-1][p])
    for i in range(len(path) - 1, -1, -1):
        c = parents[i]
        if isinstance(c, tuple):
            lst = list(c)
            lst[path[i]] = value
            value = type(c)(lst) if type(c) is tuple else type(c)(*lst)
            continue
        c[path[i]] = value
        return
