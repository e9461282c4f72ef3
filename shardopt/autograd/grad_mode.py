"""Grad mode: whether new operations are recorded on the autograd tape.

Thread-local like torch's (a worker thread starts with grad mode on). ``no_grad``,
``enable_grad`` and ``set_grad_enabled`` work as context managers and as decorators;
``set_grad_enabled(mode)`` also takes effect immediately when called as a function.
"""

from __future__ import annotations

from typing import Any, Callable

import functools
import threading

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "inference_mode",
           "is_inference_mode_enabled"]


class _GradState(threading.local):
    enabled = True  # class attribute: the default seen by every new thread


_state = _GradState()


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad are recorded."""
    return _state.enabled


def _set_enabled(mode):
    _state.enabled = bool(mode)


class _DecoratorContextManager:
    """Base for the grad-mode context managers: usable as ``with`` and as ``@decorator``."""

    def __call__(self, func):
        if isinstance(func, type):
            raise TypeError(f"{type(self).__name__} cannot decorate a class")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self.clone():
                return func(*args, **kwargs)

        return wrapper

    def clone(self):
        return type(self)()


class no_grad(_DecoratorContextManager):
    """Disable gradient recording inside the block (results have requires_grad=False)."""

    def __init__(self) -> None:
        self.prev = False

    def __enter__(self) -> None:
        self.prev = _state.enabled
        _state.enabled = False

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        _state.enabled = self.prev


class enable_grad(_DecoratorContextManager):
    """Enable gradient recording inside the block (e.g. inside a no_grad region)."""

    def __init__(self) -> None:
        self.prev = False

    def __enter__(self) -> None:
        self.prev = _state.enabled
        _state.enabled = True

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        _state.enabled = self.prev


class set_grad_enabled(_DecoratorContextManager):
    """``set_grad_enabled(mode)``: sets grad mode now; as a context manager, restores it on exit."""

    def __init__(self, mode) -> None:
        if not isinstance(mode, bool):
            raise TypeError("set_grad_enabled(): argument 'mode' must be bool, not "
                            f"{type(mode).__name__}")
        self.prev = _state.enabled
        self.mode = mode
        _state.enabled = mode

    def __enter__(self) -> None:
        pass

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        _state.enabled = self.prev

    def __call__(self, func) -> Callable[..., Any]:
        # as a decorator the mode applies while func runs, not from decoration time on
        _state.enabled = self.prev
        return super().__call__(func)

    def clone(self) -> set_grad_enabled:
        return type(self)(self.mode)


class _InferenceState(threading.local):
    enabled = False


_inference = _InferenceState()


def is_inference_mode_enabled() -> bool:
    """True inside an ``inference_mode()`` block of this thread."""
    return _inference.enabled


class inference_mode(_DecoratorContextManager):
    """``inference_mode(mode=True)``: no autograd recording inside the block (or decorated
    function), as torch's inference mode; ``mode=False`` changes nothing.  shardopt has no
    separate inference tensors: tensors made inside behave as under ``no_grad``."""

    def __new__(cls, mode=True):
        if callable(mode) and not isinstance(mode, bool):  # bare @inference_mode, as torch
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True) -> None:
        if not isinstance(mode, bool):
            raise TypeError("inference_mode(): argument 'mode' must be bool, not "
                            f"{type(mode).__name__}")
        self.mode = mode

    def __enter__(self) -> None:
        self.prev = (_state.enabled, _inference.enabled)
        if self.mode:
            _set_enabled(False)
            _inference.enabled = True

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        _set_enabled(self.prev[0])
        _inference.enabled = self.prev[1]

    def clone(self) -> inference_mode:
        return type(self)(self.mode)
