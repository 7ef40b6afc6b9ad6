"""The small protocol between agents and the runtime that runs them.

Agents and lanes are plain state holders; everything that reaches beyond one agent
(other agents, links, timers, sinks, the clock) goes through an :class:`AgentContext`
that the runtime implements. This is the only surface the two layers share, so the
agent layer can be read and tested without the runtime, and the runtime can change
(one process, a mesh, a test plane with a fake clock) without touching user code.

Link traffic flows through :class:`Uplink`: a lane offers each op to every uplink
registered on it, and the uplink decides how to carry it (coalesce into a local
downlink's pending delta, write to a WebSocket, ship over gRPC, hand to a sink).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from swimstream.crdt import HybridLogicalClock, Op, Snapshot

if TYPE_CHECKING:
    from swimstream.agent.downlink import Downlink
    from swimstream.agent.lane import Lane


class Uplink(Protocol):
    """The agent side of one link: receives every change of the lane it is linked to."""

    def offer(self, op: Op) -> None:
        """A change of the lane; called synchronously inside the owner's turn, so it
        must only record or enqueue, never run another agent's code."""
        ...

    def offer_snapshot(self, snapshot: Snapshot) -> None:
        """The lane's whole state, sent when the link syncs."""
        ...

    def unlinked(self) -> None:
        """The plane dropped the link from its end: the lane's agent was forgotten here
        (its shard moved to another instance, or is reloaded afresh from the
        changelog), so what the link showed may not be the agent's state any more."""
        ...


class LaneObserver(Protocol):
    """Sees every change of the lanes it is registered for (sinks, the store)."""

    def __call__(self, lane: Lane, op: Op) -> None: ...


class ChangeNotes(Protocol):
    """The durable store's notes of what changed since its last checkpoint, which a
    stateful lane keeps up to date itself.

    ``lane_changed`` observes the lane as a sink does, and sees every op it makes. But
    a write that nothing else follows (no link, no sink, no callback that wants the op)
    makes none: the lane notes itself in :attr:`dirty`, or the key it wrote in
    :attr:`dirty_keys`, where making the op and calling ``lane_changed`` with it was some
    4,000 machine instructions a write (swim-rust's lanes keep a dirty flag the same
    way). Either way the notes come out the same.
    """

    dirty: dict[Any, None]
    """Lanes changed as a whole (value and counter lanes, a cleared map)."""

    dirty_keys: dict[Any, dict[Any, Any]]
    """Map-like lane -> the keys changed, each to its spelling last written."""

    def lane_changed(self, lane: Lane, op: Op) -> None:
        """Note the change ``op`` made to ``lane``."""
        ...


class Timer(Protocol):
    """A pending call of an agent method, returned by ``schedule``, ``every`` and
    ``pending_timers``."""

    @property
    def due(self) -> float:
        """When it fires next, in seconds since the epoch (of the plane's clock)."""
        ...

    @property
    def pending(self) -> bool:
        """False once it fired (one-shot) or was cancelled."""
        ...

    def cancel(self) -> None:
        """Stop it firing; harmless when it already fired."""
        ...


class AgentContext(Protocol):
    """What an agent may ask of the runtime that hosts it."""

    @property
    def node_uri(self) -> str:
        """The agent's address, e.g. ``/device/42``."""
        ...

    @property
    def params(self) -> Mapping[str, str]:
        """Values of the route pattern's parameters, e.g. ``{"id": "42"}``."""
        ...

    @property
    def hlc(self) -> HybridLogicalClock:
        """The clock that stamps this agent's lane ops."""
        ...

    @property
    def replica_id(self) -> str:
        """The id this process writes CRDT ops under."""
        ...

    def now(self) -> float:
        """Seconds since the epoch, by the plane's clock (a fake one under test)."""
        ...

    def linked_lanes(self) -> Mapping[str, list[Uplink]] | None:
        """Lane name -> the live list of links to it; None when nothing links here."""
        ...

    def lane_observers(self) -> Mapping[str, tuple[LaneObserver, ...]]:
        """Lane name -> the sinks and stores that want its every change."""
        ...

    def change_notes(self) -> ChangeNotes | None:
        """Where stateful lanes note their changes (None: state is not stored)."""
        ...

    def canonical(self, node_uri: str) -> str:
        """The one spelling of ``node_uri`` (``/sensor/aa%3Abb`` for ``/sensor/aa:bb``),
        which links are kept under: another spelling's link was found by no lane after
        a restart. Raises NodeNotFoundError for a URI no route takes."""
        ...

    def lane_kind(self, node_uri: str, lane: str) -> str:
        """The kind of ``lane`` on the agent at ``node_uri``.

        Raises NodeNotFoundError or LaneNotFoundError, so bad links fail where they
        are made, with the node and lane named.
        """
        ...

    def command(self, node_uri: str, lane: str, value: Any) -> None:
        """Queue a command for another agent (or this one), anywhere in the mesh."""
        ...

    def publish(self, topic: str, value: Any, key: str | None) -> None:
        """Hand an insight to the sinks."""
        ...

    def open_downlink(self, downlink: Downlink) -> None:
        """Link ``downlink`` to its target lane; the target's state arrives as a sync."""
        ...

    def close_downlink(self, downlink: Downlink) -> None:
        """Unlink; no more deliveries reach ``downlink``."""
        ...

    def write_through(self, downlink: Downlink, op: Op) -> None:
        """Send an op made on a downlink's replica to the lane that owns the state."""
        ...

    def schedule(
        self, delay: float, method: str, args: tuple[Any, ...], period: float | None
    ) -> Timer:
        """Call the agent's ``method`` after ``delay`` seconds (then every ``period``)."""
        ...

    def pending_timers(self, method: str | None) -> list[Timer]:
        """The agent's pending timers (those calling ``method``; all when None), earliest
        first: the same ones whether set by this agent object or by one before it."""
        ...

    def cue(self, lane: Lane, key: Any) -> None:
        """A demand lane has something new for its links; compute it in a later turn."""
        ...
