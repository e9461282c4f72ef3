"""The few collectives a checkpoint needs, each carrying every rank's error.

A rank that fails (bad key, I/O error) must not leave the others blocked in the next
collective: every phase ends in one ``all_gather_object`` of (error or None, payload), and
if any rank reported an error, every rank raises -- the failing rank its own exception, the
others one of the same type naming that rank.  Without an initialized process group the
checkpoint runs as a single rank and these are local.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

from .. import distributed_c10d as c10d

__all__ = ["Group", "CheckpointError"]


class CheckpointError(RuntimeError):
    """Another rank failed during a checkpoint collective phase (its message included)."""


class Group:
    """Rank, size and error-exchanging gathers of a process group (or of no group)."""

    def __init__(self, process_group=None) -> None:
        self.pg = process_group
        self.dist = c10d.is_initialized()
        if not self.dist and process_group is not None:
            raise RuntimeError("checkpoint: process_group given but the default process "
                               "group is not initialized")
        self.rank = c10d.get_rank(process_group) if self.dist else 0
        self.size = c10d.get_world_size(process_group) if self.dist else 1

    def exchange(self, err: Optional[BaseException], payload: Any = None,
                 what: str = "checkpoint") -> List[Any]:
        """All ranks' payloads; raises on every rank if any rank passed an error."""
        mine = None if err is None else (type(err).__name__, str(err))
        if self.dist:
            out: List[Tuple] = [None] * self.size
            c10d.all_gather_object(out, (mine, payload), group=self.pg)
        else:
            out = [(mine, payload)]
        if err is not None:
            raise err
        for r, (e, _) in enumerate(out):
            if e is not None:
                name, msg = e
                exc = {"ValueError": ValueError, "TypeError": TypeError,
                       "FileNotFoundError": FileNotFoundError}.get(name)
                text = f"{what} failed on rank {r}: {name}: {msg}"
                raise (exc(text) if exc is not None else CheckpointError(text))
        return [p for _, p in out]

    def broadcast(self, value: Any, err: Optional[BaseException] = None, src: int = 0,
                  what: str = "checkpoint") -> Any:
        """`src`'s value on every rank (through exchange, so errors travel too)."""
        return self.exchange(err, value if self.rank == src else None, what)[src]
