"""RRef: a reference to a value owned by one worker (torch.distributed.rpc.RRef).

Reference counting, kept on the owner: every RRef object, on any worker, holds one count
of its owner's entry.  ``RRef(value)`` creates the entry with count 1; ``remote()`` makes
the owner create it (count 1, for the caller's RRef) before running the function.
Pickling an RRef for another worker (only inside an RPC message) first takes a count for
the copy that will be unpickled there -- locally on the owner, otherwise with a
synchronous "incref" to the owner -- so the value can never be freed while the copy is in
flight.  An RRef object's ``__del__`` queues the release of its count (a "decref" message,
sent by the agent's decref thread); the owner drops the value when its count reaches 0.
"""
from __future__ import annotations

from typing import Any, Generic, Optional, Tuple, TypeVar

from ...futures import Future
from . import _state
from .agent import WorkerInfo, _tls

T = TypeVar("T")

__all__ = ["RRef"]


def _agent():
    agent = _state.agent
    if agent is None:
        raise RuntimeError("RPC has not been initialized. Call "
                           "torch.distributed.rpc.init_rpc first.")
    return agent


class RRef(Generic[T]):
    """A remote reference.  ``RRef(value)`` wraps a local value, owned by this worker.

    Args:
        value: the value to own.
        type_hint: accepted for torch compatibility.
    """

    def __init__(self, value: Any = None, type_hint: Any = None) -> None:
        agent = _agent()
        self._agent = agent
        self._owner = agent.rank
        self._id = agent.new_rref_id()
        agent.own_value(self._id, value)
        self._created: Optional[Future] = None
        self._holds = True

    @classmethod
    def _from_id(cls, owner: int, rref_id: Tuple[int, int],
                 created: Optional[Future] = None) -> "RRef":
        self = cls.__new__(cls)
        self._agent = _agent()
        self._owner = owner
        self._id = rref_id
        self._created = created
        self._holds = True
        return self

    def __del__(self) -> None:
        if getattr(self, "_holds", False):
            self._holds = False
            agent = self._agent
            if not agent._closing:
                agent.release(self._owner, self._id)

    # -- identity ---------------------------------------------------------------------------
    def is_owner(self) -> bool:
        """True when this worker owns the value."""
        return self._owner == self._agent.rank

    def owner(self) -> WorkerInfo:
        """The owner's WorkerInfo."""
        return self._agent.get_worker_info(self._owner)

    def owner_name(self) -> str:
        """The owner's worker name."""
        return self.owner().name

    def confirmed_by_owner(self) -> bool:
        """True once the owner knows about this reference (always, except for an RRef from
        remote() whose creation has not been acknowledged yet)."""
        if self.is_owner() or self._created is None:
            return True
        return self._created.done() and self._created._exc is None

    # -- value ------------------------------------------------------------------------------
    def local_value(self) -> T:
        """The value itself; only on the owner."""
        if not self.is_owner():
            raise RuntimeError(f"Cannot call localValue() on a non-local reference. Call it "
                               f"on {self.owner()}")
        return self._agent.owner_value(self._id, -1)

    def to_here(self, timeout: float = -1.0) -> T:
        """A copy of the value (the value itself on the owner); blocks until it exists.

        Args:
            timeout: seconds (default: the RPC timeout; 0: no timeout).
        """
        agent = self._agent
        if self._created is not None and self._created.done() and self._created._exc is not None:
            exc = self._created._exc
            if "ran for more than set timeout" in str(exc):
                raise RuntimeError("RRef creation via rpc.remote() timed out, and it is "
                                   "possible that the RRef on the owner node does not exist.")
            raise exc
        if self.is_owner():
            return agent.owner_value(self._id, timeout)
        t = agent._resolve_timeout(timeout)
        return agent.request(self._owner, ("fetch", self._id, t), t).wait()

    def _get_future(self) -> Future:
        """The future of the remote() call that created this RRef (done when acknowledged)."""
        if self._created is None:
            f: Future = Future()
            f.set_result(None)
            return f
        return self._created

    # -- proxies ------------------------------------------------------------------------
    def rpc_sync(self, timeout: float = -1.0):
        """A proxy running the value's methods on the owner with rpc_sync."""
        return _Proxy(self, "rpc_sync", timeout)

    def rpc_async(self, timeout: float = -1.0):
        return _Proxy(self, "rpc_async", timeout)

    def remote(self, timeout: float = -1.0):
        return _Proxy(self, "remote", timeout)

    # -- pickling (only inside RPC messages) -----------------------------------------------------
    def __reduce__(self):
        dest = getattr(_tls, "dest", None)
        if dest is None:
            raise RuntimeError("RRef pickling is only allowed inside RPC calls.")
        if self._created is not None and not self._created.done():
            self._created._wait_done(None)  # forks of an unconfirmed RRef wait for creation
        agent = self._agent
        if self.is_owner():
            agent.owner_incref(self._id)
        else:
            t = agent.rpc_timeout
            agent.request(self._owner, ("incref", self._id), t).wait()
        return (_rebuild_rref, (self._owner, self._id))

    def __copy__(self) -> "RRef":
        return self  # a handle: copies of an object holding RRefs share the references

    def __deepcopy__(self, memo) -> "RRef":
        return self

    def __repr__(self) -> str:
        kind = "OwnerRRef" if self.is_owner() else "UserRRef"
        return f"{kind}(RRefId(created_on={self._id[0]}, local_id={self._id[1]}))"


def _rebuild_rref(owner: int, rref_id: Tuple[int, int]) -> RRef:
    return RRef._from_id(owner, tuple(rref_id))


def _call_method(method: str, rref: RRef, *args, **kwargs):
    return getattr(rref.local_value(), method)(*args, **kwargs)


class _Proxy:
    def __init__(self, rref: RRef, how: str, timeout: float) -> None:
        self._rref, self._how, self._timeout = rref, how, timeout

    def __getattr__(self, name: str):
        from . import api  # noqa: PLC0415

        def call(*args, **kwargs):
            fn = getattr(api, self._how)
            return fn(self._rref.owner(), _call_method, args=(name, self._rref) + args,
                      kwargs=kwargs, timeout=self._timeout)
        return call
