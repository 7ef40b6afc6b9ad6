"""Links inside one plane: who is linked to which lane, and delivery to downlinks.

Link state lives here, at the plane, rather than in agent objects, so either end can be
passivated without breaking the link. A :class:`LinkEnd` is the uplink registered on
the target lane for one local downlink: it asks the plane to deliver the lane's changes
to the subscriber, waking a passivated subscriber if need be (an aggregate fed by a link
is not idle). An idle subscriber takes a change at once, as it is made; while a
delivery waits for the subscriber's turn, the changes after it are coalesced
(:mod:`swimstream.runtime.coalesce`) and go with it.

Link lifecycle: open (register the end, queue a sync in the target's turn) -> synced
(the target's snapshot reaches the downlink) -> events (coalesced ops) -> closed
(the end is unregistered; an undelivered batch is dropped).

A link outlives its target's object, and the target may come back with state restored
from elsewhere (its shard moved to this instance, and its state was read from the
changelog), or the link itself may be restored with its subscriber. Such an end is
marked (``resync_at``, the HLC time of the mark): its target syncs it again as it
loads (as SwimOS resyncs a link to an agent that restarted), and the sync then replaces
what the replica held from before the mark rather than merge with it, since the
replica's older writes may be ones the restored state never had.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swimstream.runtime.coalesce import Pending, pending_for
from swimstream.runtime.scheduler import offer_change

if TYPE_CHECKING:
    from swimstream.agent import Uplink
    from swimstream.crdt import Snapshot
    from swimstream.runtime.plane import Plane


class LinkEnd:
    """The target-side end of a local link; implements the Uplink protocol."""

    __slots__ = (
        "_plane",
        "closed",
        "downlink_id",
        "held",
        "lane",
        "node_uri",
        "pending",
        "replace_before",
        "resync_at",
        "scheduled",
        "subscriber",
    )

    def __init__(
        self,
        subscriber: str,
        downlink_id: int,
        node_uri: str,
        lane: str,
        lane_kind: str,
        plane: Plane,
    ) -> None:
        self.subscriber = subscriber
        self.downlink_id = downlink_id
        self.node_uri = node_uri
        self.lane = lane
        self.pending: Pending = pending_for(lane_kind)
        self.scheduled = False
        """A delivery is queued: it takes what ``pending`` holds then."""
        self.held = False
        """``pending`` holds changes no delivery is queued for (its subscriber could not
        load): the next delivery takes them with its own."""
        self.closed = False
        self.resync_at = 0
        """Non-zero: the target syncs this end again when it next loads (see above)."""
        self.replace_before = 0
        """Non-zero: the sync pending here replaces the replica's writes before this time."""
        self._plane = plane

    offer = offer_change
    """A change of the lane: the subscriber takes it at once if idle, else with its next
    delivery. Written in the scheduler's module, since it is mostly a turn run at once
    (see :func:`~swimstream.runtime.scheduler.offer_change`)."""

    def offer_snapshot(self, snapshot: Snapshot) -> None:
        if self.closed:
            return
        self.pending.add_snapshot(snapshot)
        if not self.scheduled:
            self.scheduled = True
            self._plane._deliver(self, None)

    def unlinked(self) -> None:
        """(Links between agents outlive a forgotten agent, reaching it loaded afresh:
        the plane does not drop them.)"""
        self.closed = True


class LinkRegistry:
    """Every open link of the plane, by target lane and by subscriber."""

    def __init__(self) -> None:
        self._by_node: dict[str, dict[str, list[Uplink]]] = {}
        self._ends: dict[tuple[str, int], LinkEnd] = {}
        self._count = 0  # kept, not summed: statistics read it every second (dashboards)

    def __len__(self) -> int:
        return self._count

    def linked_lanes(self, node_uri: str) -> dict[str, list[Uplink]] | None:
        """Lane -> links, for one agent; None when nothing links to it."""
        return self._by_node.get(node_uri)

    def add(self, node_uri: str, lane: str, uplink: Uplink) -> list[Uplink]:
        """Register ``uplink``; returns the lane's list of links, for the lane to iterate.

        The lists are never changed in place, only replaced, and the lane re-pointed:
        a change's offers run subscribers at once (an idle one, ``run_now``), and one
        that links or unlinks there would otherwise shift the list the lane is going
        through, so that the link after it missed the change."""
        lanes = self._by_node.setdefault(node_uri, {})
        uplinks = lanes.get(lane, [])
        if uplink not in uplinks:
            uplinks = lanes[lane] = [*uplinks, uplink]
            self._count += 1
        return uplinks

    def remove(self, node_uri: str, lane: str, uplink: Uplink) -> list[Uplink] | None:
        """Unregister ``uplink``; returns the lane's new list of links (see :meth:`add`),
        None when it has none left."""
        lanes = self._by_node.get(node_uri)
        uplinks = None if lanes is None else lanes.get(lane)
        if lanes is None or uplinks is None:
            return None
        if uplink in uplinks:
            uplinks = lanes[lane] = [u for u in uplinks if u is not uplink]
            self._count -= 1
        if uplinks:
            return uplinks
        del lanes[lane]
        if not lanes:
            del self._by_node[node_uri]
        return None

    def end(self, subscriber: str, downlink_id: int) -> LinkEnd | None:
        """The link end of a subscriber's downlink, if that link is open."""
        return self._ends.get((subscriber, downlink_id))

    def add_end(self, end: LinkEnd) -> None:
        self._ends[(end.subscriber, end.downlink_id)] = end

    def pop_end(self, subscriber: str, downlink_id: int) -> LinkEnd | None:
        return self._ends.pop((subscriber, downlink_id), None)

    def linked_nodes(self) -> list[str]:
        """The agents something links to (a copy: callers unlink some as they go)."""
        return list(self._by_node)

    def ends(self) -> list[LinkEnd]:
        """Every subscriber's link end (a copy: callers close some as they go)."""
        return list(self._ends.values())
