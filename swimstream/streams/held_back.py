"""Partitions held back behind one agent's full mailbox, while the others flow.

When a record fills its target's mailbox (``Plane.submit`` answers False), only the
partition it came from waits for that agent, as Faust pauses only the partition whose
buffer is full: the source pauses that partition and keeps routing the others, so one
slow key stalls the partitions that feed it, not every partition of the source.

A partition's records are never reordered, so every later record of a held partition
waits too, whatever agent it is for: the ones the source had fetched before its pause
took hold (what the connector had buffered, the rest of the batch) are kept here, in
offset order, and routed first once the mailbox drained to half its capacity. That is a
fetch or two at most per partition: once paused, a partition delivers nothing more.
Held records are not in flight (not routed, their offsets not begun), so no commit and
no checkpoint's cut goes past them; a revoke, or a stop, drops them, to be read again
by whoever reads the partition next.

A record for the full agent that another partition brings is queued all the same (one
over the capacity for each partition at most) and holds that partition back as well.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from swimstream.streams.connector import InboundRecord, TopicPartition

RoomWait = Callable[[str], Awaitable[None]]
"""Returns once the agent at a node URI has room in its mailbox again."""


class HeldBack:
    """The partitions waiting for room in a mailbox, and their records fetched since."""

    def __init__(self, wait_for_room: RoomWait) -> None:
        self._wait_for_room = wait_for_room
        self._records: dict[TopicPartition, deque[InboundRecord]] = {}
        self._node_of: dict[TopicPartition, str] = {}
        self._rooms: dict[str, asyncio.Future[None]] = {}
        """One wait for room per full mailbox, however many partitions wait on it."""
        self.room = asyncio.Event()
        """Set when a mailbox that partitions wait for has room (:meth:`take_ready`)."""

    def __bool__(self) -> bool:
        return bool(self._node_of)

    def __contains__(self, tp: TopicPartition) -> bool:
        return tp in self._node_of

    def __len__(self) -> int:
        return len(self._node_of)

    @property
    def partitions(self) -> set[TopicPartition]:
        """The partitions held back now."""
        return set(self._node_of)

    @property
    def records(self) -> int:
        """Records held, over all partitions."""
        return sum(len(held) for held in self._records.values())

    def first_offsets(self) -> dict[TopicPartition, int]:
        """The offset of the first record held per partition: where its routing stands,
        whatever the source fetched past it."""
        return {tp: held[0].offset() or 0 for tp, held in self._records.items() if held}

    def hold(
        self, tp: TopicPartition, node_uri: str, records: Iterable[InboundRecord] = ()
    ) -> None:
        """``tp`` waits for room at ``node_uri``; ``records`` are its next records."""
        self._node_of[tp] = node_uri
        self._records[tp] = deque(records)
        if node_uri not in self._rooms:
            room = asyncio.ensure_future(self._wait_for_room(node_uri))
            room.add_done_callback(self._roomy)
            self._rooms[node_uri] = room

    def add(self, tp: TopicPartition, record: InboundRecord) -> None:
        """A record of held-back ``tp``, fetched after the ones held already."""
        self._records[tp].append(record)

    def take_ready(self) -> list[tuple[TopicPartition, deque[InboundRecord]]]:
        """The partitions whose mailbox has room now, with their records in offset
        order; they are no longer held back (one that fills it again is held anew)."""
        self.room.clear()
        roomy = {node for node, room in self._rooms.items() if room.done()}
        for node in roomy:
            del self._rooms[node]
        ready = [tp for tp, node in self._node_of.items() if node in roomy]
        for tp in ready:
            del self._node_of[tp]
        return [(tp, self._records.pop(tp)) for tp in ready]

    def release(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget ``partitions`` and their records (revoked: their next owner reads
        them), and stop waiting for a mailbox no partition waits for any more."""
        for tp in partitions:
            self._node_of.pop(tp, None)
            self._records.pop(tp, None)
        waited = set(self._node_of.values())
        for node in [node for node in self._rooms if node not in waited]:
            self._rooms.pop(node).cancel()

    def close(self) -> None:
        """Forget every partition and stop every wait (the source stopped)."""
        self.release(list(self._node_of))

    def _roomy(self, room: asyncio.Future[None]) -> None:
        if not room.cancelled():
            room.exception()  # (retrieved: a failed wait counts as room, and is tried anew)
            self.room.set()
