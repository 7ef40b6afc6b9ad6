"""One agent's place in the runtime: its mailbox and its view of the plane.

The cell is what an agent's :class:`~swimstream.agent.AgentContext` is: every request
the agent makes (command another agent, open a link, set a timer) comes here and goes
on to the plane. It also holds the mailbox that makes the agent process one thing at a
time. The mailbox is a plain list that exists only while it holds something: most of a
million agents are idle at any moment, and the scheduler takes a whole list per turn
rather than popping items one by one.

Mailbox items are tuples ``(handler, a, b, ack)``: the scheduler calls
``handler(cell, a, b)`` in the agent's turn, then ``ack(error_or_None)`` if given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from swimstream.crdt import HybridLogicalClock
from swimstream.runtime.origin import Ack, fork_origin

log = logging.getLogger("swimstream.agent")

if TYPE_CHECKING:
    import asyncio

    from swimstream.agent import Agent, ChangeNotes, Downlink, Lane, LaneObserver, Timer, Uplink
    from swimstream.crdt import Op
    from swimstream.routing import RoutePattern
    from swimstream.runtime.plane import Plane
    from swimstream.runtime.timers import TimerEntry

Handler: TypeAlias = "Callable[[AgentCell, Any, Any], Any]"
Item: TypeAlias = "tuple[Handler, Any, Any, Ack]"


class AgentCell:
    """The runtime side of one active agent; implements AgentContext."""

    __slots__ = (
        "_params",
        "agent",
        "busy",
        "cues",
        "last_used",
        "mailbox",
        "node_uri",
        "plane",
        "room_waiters",
        "route",
        "scheduled",
        "stopped",
        "unbound",
    )

    def __init__(
        self,
        plane: Plane,
        node_uri: str,
        route: RoutePattern,
        unbound: Mapping[str, Callable[[Agent, Any], Any]],
    ) -> None:
        self.plane = plane
        self.node_uri = node_uri
        self.route = route
        self.unbound = unbound
        """The agent class's ``__swim_unbound__``: what handles a command to each of its
        lanes while unbound, so every lane's name. Every command reads it, and a class
        attribute is a slower read than a slot (some 300 machine instructions)."""
        self.agent: Agent = None  # type: ignore[assignment]  # set right after creation
        self.mailbox: list[Item] | None = None
        self.scheduled = False  # in the ready queue, or running an async callback
        self.busy = False  # running an async callback
        self.last_used = 0.0
        self.cues: dict[str, set[Any]] | None = None
        self.room_waiters: list[asyncio.Future[None]] | None = None
        self._params: dict[str, str] | None = None
        # ``on_stop`` ran, but queued work for the agent itself (a command to itself, a
        # cue): it goes once idle again, without another ``on_stop``.
        self.stopped = False

    def post(self, handler: Handler, a: Any = None, b: Any = None, ack: Ack = None) -> None:
        """Queue work for the agent's next turn."""
        mailbox = self.mailbox
        if mailbox is None:
            self.mailbox = [(handler, a, b, ack)]
        else:
            mailbox.append((handler, a, b, ack))
        if not self.scheduled:
            self.scheduled = True
            scheduler = self.plane._scheduler
            scheduler._ready.append(self)
            if scheduler._sleeping:
                scheduler.wake()

    # -- AgentContext ------------------------------------------------------------------

    @property
    def params(self) -> Mapping[str, str]:
        if self._params is None:
            self._params = self.route.match(self.node_uri) or {}
        return self._params

    @property
    def hlc(self) -> HybridLogicalClock:
        return self.plane.hlc

    @property
    def replica_id(self) -> str:
        return self.plane.replica_id

    def now(self) -> float:
        return self.plane.clock.time()

    def linked_lanes(self) -> Mapping[str, list[Uplink]] | None:
        return self.plane.links.linked_lanes(self.node_uri)

    def lane_observers(self) -> Mapping[str, tuple[LaneObserver, ...]]:
        return self.plane._observer_table(self.route)

    def change_notes(self) -> ChangeNotes | None:
        return self.plane._state

    def lane_kind(self, node_uri: str, lane: str) -> str:
        return self.plane.lane_kind(node_uri, lane)

    def canonical(self, node_uri: str) -> str:
        return self.plane._resolve(node_uri)[2]

    def command(self, node_uri: str, lane: str, value: Any) -> None:
        ack = fork_origin()
        try:
            room = self.plane.submit(node_uri, lane, value, ack)
        except BaseException:
            # Never queued: the record's own ack takes the error (and dead-letters it),
            # and this share of it must not keep the record unfinished for good.
            if ack is not None:
                ack(None)
            raise
        if not room and ack is not None:
            # A command a record caused filled its target's mailbox: the sources wait
            # for room there as for a record's own target (``Plane.take_overfull``).
            # Without it only the in-flight bound held them back, and an agent that
            # forwards each record to a slower one filled that one's mailbox to 100
            # times its capacity (10,000 records in flight for a capacity of 100).
            self.plane._scheduler.overfull = node_uri

    def publish(self, topic: str, value: Any, key: str | None) -> None:
        self.plane._publish(self, topic, value, key)

    def open_downlink(self, downlink: Downlink) -> None:
        self.plane._open_downlink(self, downlink)

    def close_downlink(self, downlink: Downlink) -> None:
        self.plane._close_downlink(self, downlink)

    def write_through(self, downlink: Downlink, op: Op) -> None:  # untracked: links carry state
        self.plane._write_through(downlink.node_uri, downlink.lane, op)

    def schedule(
        self, delay: float, method: str, args: tuple[Any, ...], period: float | None
    ) -> Timer:
        return self.plane._schedule_timer(self.node_uri, method, args, delay, period)

    def pending_timers(self, method: str | None) -> list[Timer]:
        timers = self.plane.timers.for_node(self.node_uri)
        timers.sort(key=lambda t: (t.due, t.id))
        return [t for t in timers if method is None or t.method == method]

    def cue(self, lane: Lane, key: Any) -> None:
        if self.cues is None:
            self.cues = {}
        keys = self.cues.get(lane.name)
        if keys is None:
            self.cues[lane.name] = keys = set()
            self.post(handle_cue, lane.name)
        if key is not None:
            keys.add(key)

    @property
    def idle(self) -> bool:
        """Nothing queued or running: safe to passivate."""
        return not self.scheduled and not self.mailbox


# -- mailbox handlers: each runs inside the agent's turn -----------------------------


def handle_start(cell: AgentCell, _a: Any, _b: Any) -> Any:
    linked = cell.plane.links.linked_lanes(cell.node_uri)
    if linked is not None:
        # Links marked while this agent was away (its state restored from elsewhere, or
        # theirs): synced again now, before ``on_start`` changes anything.
        for lane, uplinks in list(linked.items()):
            for uplink in list(uplinks):
                if getattr(uplink, "resync_at", 0):
                    handle_link(cell, lane, uplink)
    return cell.agent.on_start()


def handle_command(cell: AgentCell, lane: str, value: Any) -> Any:
    """A command to one of the agent's lanes (``Scheduler.run_now`` holds a copy of
    this, inline: change both)."""
    agent = cell.agent
    lanes = agent._namespace
    if lane in lanes:
        return lanes[lane]._command(value)
    return cell.unbound[lane](agent, value)


def handle_link(cell: AgentCell, lane: str, uplink: Uplink) -> None:
    """Register a link on one of this agent's lanes and sync it, in the agent's turn."""
    if getattr(uplink, "closed", False):
        return  # closed before it got here
    resync_at = getattr(uplink, "resync_at", 0)
    if resync_at:  # (a marked link end: this sync replaces what its replica held)
        uplink.replace_before, uplink.resync_at = resync_at, 0  # type: ignore[attr-defined]
    uplinks = cell.plane.links.add(cell.node_uri, lane, uplink)
    bound = cell.agent.lane(lane)
    bound._attach_uplinks(uplinks)
    bound._sync(uplink)


def handle_delivery(cell: AgentCell, end: Any, op: Op | None) -> None:
    """A link's changes: ``op`` alone (made as its idle subscriber could take it at
    once), or, None, what the link's buffer coalesced while this delivery was queued.

    ``scheduler.offer_change`` holds a copy of the ``op`` case, inline: change both."""
    end.scheduled = False  # the next offer to the link schedules a new delivery
    # (Taken now, so that a closed link drops it; a single op goes as itself: a
    # constant tuple here, then ``_receive_op``, the usual case's path.)
    snapshot, ops = end.pending.take() if op is None else (None, ())
    downlinks = cell.agent._downlinks
    downlink = None if downlinks is None else downlinks.get(end.downlink_id)
    if downlink is not None and not downlink._closed:
        if end.replace_before:  # (a resync: see ``swimstream.runtime.links``)
            downlink._replace_before(end.replace_before)
            end.replace_before = 0
        if op is None:
            downlink._receive(snapshot, ops)
        else:
            downlink._receive_op(op)
        if downlink.stores_replica:
            cell.plane._links_delivered(cell.node_uri)


def handle_remote_op(cell: AgentCell, lane: str, op: Op) -> None:
    cell.agent._namespace[lane]._apply_remote(op)


def handle_timer(cell: AgentCell, entry: TimerEntry, _b: Any) -> Any:
    """A due timer's tick: skipped when the timer was cancelled after it fell due (by a
    message ahead of it in the mailbox), as ``cancel`` promises."""
    if not entry.begin():
        return None
    method = getattr(cell.agent, entry.method, None)
    if not callable(method):
        # A stored timer of a method a deploy removed or renamed: it would fail at every
        # tick, for ever. It goes, as a stored timer of a removed route does.
        log.warning(
            "a stored timer of %s is dropped: %s has no method %r",
            cell.node_uri,
            type(cell.agent).__name__,
            entry.method,
        )
        entry.cancel()
        return None
    return method(*entry.args)


def handle_cue(cell: AgentCell, lane: str, _b: Any) -> None:
    assert cell.cues is not None
    keys = cell.cues.pop(lane, set())
    cell.agent._namespace[lane]._cued(keys)


def handle_call(cell: AgentCell, fn: Callable[[Agent], Any], _b: Any) -> Any:
    """Run an arbitrary function in the agent's turn (used by tests and the web layer)."""
    return fn(cell.agent)
