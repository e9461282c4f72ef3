"""shardopt.futures: torch.futures.Future, the result handle of asynchronous RPCs.

A thread-safe one-shot value cell: ``set_result`` / ``set_exception`` complete it once,
``wait`` / ``value`` read it (``wait`` blocks), ``then`` / ``add_done_callback`` chain work
that runs as soon as it completes (on the completing thread, or at once if already done).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Generic, List, Optional, TypeVar

T = TypeVar("T")
S = TypeVar("S")

__all__ = ["Future", "collect_all", "wait_all"]

_UNSET = object()


class Future(Generic[T]):
    """A value that becomes available later (torch.futures.Future).

    Args:
        devices: accepted for torch compatibility (CPU values only).
    """

    def __init__(self, *, devices: Optional[list] = None) -> None:
        self._cond = threading.Condition()
        self._value: Any = _UNSET
        self._exc: Optional[BaseException] = None
        self._callbacks: List[Callable[["Future[T]"], None]] = []
        # Where callbacks run when set (RPC futures: the agent's pool, so that a callback
        # that itself waits on an RPC never blocks the thread that delivers replies).
        self._executor = None

    def done(self) -> bool:
        """True once a result or an exception is set."""
        with self._cond:
            return self._value is not _UNSET or self._exc is not None

    def _wait_done(self, timeout: Optional[float]) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._value is not _UNSET or self._exc is not None, timeout)

    def wait(self) -> T:
        """Block until the value is set; return it, or raise the stored exception."""
        self._wait_done(None)
        return self.value()

    def value(self) -> T:
        """The value of a completed future (raises its exception; must be done)."""
        with self._cond:
            if self._exc is not None:
                raise self._exc
            if self._value is _UNSET:
                raise RuntimeError("Future.value() called before the future completed; "
                                   "call wait() first")
            return self._value

    def _complete(self, value: Any, exc: Optional[BaseException]) -> None:
        with self._cond:
            if self._value is not _UNSET or self._exc is not None:
                raise RuntimeError("Future can only be marked completed once")
            if exc is not None:
                self._exc = exc
            else:
                self._value = value
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        for cb in callbacks:
            if self._executor is not None:
                try:
                    self._executor.submit(_run_callback, cb, self)
                    continue
                except RuntimeError:  # executor shut down: run it here
                    pass
            _run_callback(cb, self)

    def set_result(self, result: T) -> None:
        """Complete the future with `result`."""
        self._complete(result, None)

    def set_exception(self, result: BaseException) -> None:
        """Complete the future with an exception that wait()/value() will raise."""
        if not isinstance(result, BaseException):
            raise TypeError(f"{result} is of type {type(result)}, not an Exception.")
        self._complete(None, result)

    def _try_complete(self, value: Any, exc: Optional[BaseException]) -> bool:
        """Complete unless already completed (racing timeout / reply / failure paths)."""
        try:
            self._complete(value, exc)
            return True
        except RuntimeError:
            return False

    def add_done_callback(self, callback: Callable[["Future[T]"], None]) -> None:
        """Run ``callback(self)`` once the future completes."""
        with self._cond:
            if self._value is _UNSET and self._exc is None:
                self._callbacks.append(callback)
                return
        callback(self)

    def then(self, callback: Callable[["Future[T]"], S]) -> "Future[S]":
        """A new future holding ``callback(self)`` (or the exception it raised)."""
        out: Future[S] = Future()

        def run(fut):
            try:
                out.set_result(callback(fut))
            except BaseException as e:  # noqa: BLE001 - delivered through the future
                out.set_exception(e)
        self.add_done_callback(run)
        return out

    def __repr__(self) -> str:
        return f"<Future done={self.done()}>"


def _run_callback(cb, fut) -> None:
    try:
        cb(fut)
    except Exception:  # a callback's failure belongs to the future it feeds (see then())
        pass


def collect_all(futures: List[Future]) -> Future[List[Future]]:
    """A future completed (with the list itself) once every future in the list is."""
    out: Future[List[Future]] = Future()
    futures = list(futures)
    left = [len(futures)]
    lock = threading.Lock()
    if not futures:
        out.set_result(futures)
        return out

    def one(_):
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            out.set_result(futures)
    for f in futures:
        f.add_done_callback(one)
    return out


def wait_all(futures: List[Future]) -> List[Any]:
    """Wait for every future; their values, or the first exception raised."""
    return [f.wait() for f in futures]
