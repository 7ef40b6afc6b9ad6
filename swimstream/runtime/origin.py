"""Which record a piece of work descends from, so its effects can be counted.

A broker record is done, and its offset safe to commit, only when everything it caused
is done: the command callback, the commands that callback sent to other agents (and
theirs), and the insight records it published, delivered. The source gives each record
an ack that is :class:`Tracked`; while the scheduler runs a message, :data:`ORIGIN`
holds that message's ack, and whatever the callback causes (a command to another
agent, an insight to a sink) takes a *fork* of it. The record completes when every
fork has completed.

While a plain callback runs, the scheduler holds its origin in a field (:data:`TURN`):
setting it for every message is five times cheaper than setting a context variable. An
``async`` callback runs as its own task and must keep its origin across awaits, when other
turns run in between: its task is created with :data:`ORIGIN`, a context variable, set to
its origin, and :func:`fork_origin` reads that outside the scheduler's turns.

State that reaches other agents through links is not traced: links carry state, not
events, and what they carry is rebuilt from state after a restart.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol, TypeAlias


class Done(Protocol):
    """What an ack is: ``ack(error)`` (the scheduler calls ``ack.__call__(error)``,
    which this spells out for the type checker: see ``Scheduler.drain``)."""

    def __call__(self, error: BaseException | None, /) -> None: ...


Ack: TypeAlias = Done | None
"""Called once a message's work is done, with the exception if it failed."""


class Tracked:
    """An ack that can hand out acks for the work it causes."""

    __slots__ = ()

    def __call__(self, error: BaseException | None) -> None:
        """The work this ack was given to has finished (with ``error`` if it failed)."""
        raise NotImplementedError

    def fork(self) -> Tracked:
        """An ack for one more piece of work caused by this one."""
        raise NotImplementedError


ORIGIN: ContextVar[Ack] = ContextVar("swimstream_origin", default=None)
"""The ack of the message an ``async`` callback's task runs for (None elsewhere)."""


class Turn:
    """The origin of the plain callback running in the scheduler's turn now."""

    __slots__ = ("origin",)

    def __init__(self) -> None:
        self.origin: Ack = None


TURN = Turn()
"""Set by the scheduler around each plain callback; None between turns."""


def fork_origin() -> Tracked | None:
    """An ack for work caused by the running callback, if its origin is tracked."""
    origin = TURN.origin
    if origin is None:
        origin = ORIGIN.get()
    return origin.fork() if isinstance(origin, Tracked) else None
