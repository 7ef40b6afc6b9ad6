"""Which offsets are safe to commit: a record is done when all its effects are.

Records of one partition are routed in offset order but finish out of order: each goes
to its own agent, and some cause more work elsewhere. A :class:`PartitionTracker` holds
the offsets still in flight and advances the partition's committable offset (the next
offset to read after a restart) past every record whose work is complete, never past
one still running. Committing exactly that offset is at-least-once with nothing lost:
a restart replays the records that were still in flight, and nothing before them.

A :class:`RecordAck` is the ack of one record. It counts the record's outstanding work
(its own callback, every fork handed to the commands and insights it caused, and the
dead-letter record when it failed) and tells its tracker when the count reaches zero.

Most records need none of that: their agent is idle, so the command runs as it is
routed, and it causes nothing that outlives it. A record of a topic with one route
takes its partition's :class:`InlineAck` instead, an object made once and armed for
each record; if the command completes, nothing forked, before the router returns, the
record is done: the committable offset moves past it at once when nothing older is in
flight, and otherwise it goes in flight already done, behind the older ones, as its
RecordAck would have left it. Anything else (a fork, a failure, a command queued behind
others or run asynchronously, an error the router does not dead-letter) makes the
RecordAck then, before any other record of the partition is routed, so that offsets go
in flight in order as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from swimstream.runtime.origin import Tracked
from swimstream.streams.connector import InboundRecord, TopicPartition

if TYPE_CHECKING:
    from swimstream.streams.dead_letter import DeadLetters


class PartitionTracker:
    """In-flight offsets of one partition and how far it is safe to commit."""

    __slots__ = (
        "_done",
        "_inflight",
        "committable",
        "inline",
        "replayed_to",
        "revoked",
        "routed",
        "tp",
    )

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self._inflight: deque[int] = deque()
        """Offsets in flight, oldest first: the oldest unfinished record's (never one
        that is done), and every one routed after it, unfinished or done. A record done
        inline behind it is there as its offset's complement (``~offset``, negative):
        marked done as it is added, with no entry in ``_done``, where the set's add
        and, once the older ones are done, its look-up and discard cost some 360
        machine instructions a record (a hot reading's alert holds its partition's
        later records behind it until its delivery: the peers' devices bench 23,740 to
        23,380 a reading, towers 61,770 to 61,420)."""
        self._done: set[int] = set()
        """The records in flight, by offset, that finished before an older one (their
        own ack's completion, out of order)."""
        self.committable: int | None = None
        """Next offset to read after a restart; None until a record finished."""
        self.revoked = False
        """Set when the partition was taken away: late completions change nothing."""
        self.routed: int | None = None
        """Next offset after the last record routed (a checkpoint's cut, once settled)."""
        self.replayed_to: int | None = None
        """Set on a partition given back after a revoke: its agents' state already holds
        every record before this offset, so those are dropped when delivered again."""
        self.inline: InlineAck | None = None
        """The ack its router arms for each record of a topic with one route (made on
        first use; replaced when one is kept by a queued or asynchronous command)."""

    def __len__(self) -> int:
        return len(self._inflight)

    def begin(self, offset: int) -> None:
        """A record of this partition is now in flight (offsets arrive in order)."""
        self._inflight.append(offset)
        self.routed = offset + 1

    def complete(self, offset: int) -> None:
        """The record at ``offset`` and all its effects are done."""
        inflight = self._inflight
        if not inflight or inflight[0] != offset:
            self._done.add(offset)  # finished before an older record: wait for it
            return
        inflight.popleft()  # the common case: completion in order
        self._pass_done(offset)

    def _pass_done(self, last: int) -> None:
        """The oldest record in flight, at ``last``, is done and out: take out the done
        ones after it, up to the next unfinished one, and commit up to that."""
        inflight = self._inflight
        done = self._done
        while inflight:
            head = inflight[0]
            if head < 0:  # (done inline behind the older ones: see ``_inflight``)
                last = ~head
            elif head in done:
                done.discard(head)
                last = head
            else:
                break
            inflight.popleft()
        # After a restart, reading resumes at the oldest record still in flight.
        self.committable = inflight[0] if inflight else last + 1

    @property
    def oldest_inflight(self) -> int | None:
        """The lowest offset still being worked on."""
        return self._inflight[0] if self._inflight else None


class RecordAck(Tracked):
    """The ack of one consumed record: done when its callback and every effect are.

    Made by :func:`record_ack` as the record is routed, it puts the record in flight on
    its partition's tracker, and takes it out when done. Both steps are inlined for the
    common case (records finish in order): they were two calls of the thirty a record
    costs.
    """

    __slots__ = ("_dead_letters", "_pending", "_tracker", "offset", "record")

    _tracker: PartitionTracker
    record: InboundRecord
    offset: int
    _dead_letters: DeadLetters
    _pending: int

    def __call__(self, error: BaseException | None) -> None:
        """One of the record's own commands finished; a failure dead-letters the record."""
        if error is not None:
            self._pending += 1
            self._dead_letters.send(self.record, error, self._child_done)
        self._pending -= 1  # (``_child_done`` inline: once per record)
        if self._pending == 0:
            tracker = self._tracker
            inflight = tracker._inflight
            if tracker.revoked:
                return
            offset = self.offset
            if inflight and inflight[0] == offset:
                inflight.popleft()  # (``tracker.complete``'s usual case inline)
                if not inflight:
                    tracker.committable = offset + 1
                elif inflight[0] >= 0 and not tracker._done:
                    tracker.committable = inflight[0]
                else:
                    tracker._pass_done(offset)
            else:
                tracker.complete(offset)

    def fork(self) -> Tracked:
        self._pending += 1
        return _ChildAck(self)

    def failed(self, error: BaseException, route: str) -> None:
        """One command of a record with several routes failed: its dead letter names
        ``route``, as the record's other routes may have taken it (a replay of the
        whole record would apply it to them again)."""
        self._pending += 1
        self._dead_letters.send(self.record, error, self._child_done, route=route)
        self(None)

    def _child_done(self, error: BaseException | None = None) -> None:
        # A failed effect elsewhere (another agent's callback) is logged and counted by
        # the plane; the record itself was processed, so it still completes.
        self._pending -= 1
        if self._pending == 0 and not self._tracker.revoked:
            self._tracker.complete(self.offset)


def record_ack(
    tracker: PartitionTracker,
    record: InboundRecord,
    offset: int,
    dead_letters: DeadLetters,
    commands: int = 1,
) -> RecordAck:
    """A new record's ack, its record now in flight on ``tracker``; ``commands``: one per
    source route that takes the record.

    A function, not ``RecordAck.__init__``: calling a class whose ``__init__`` is Python
    runs it through C in a frame of its own (about 450 machine instructions more, once a
    record), where ``RecordAck()`` is all C and this call is inlined by the interpreter.
    """
    ack = RecordAck()
    ack._tracker = tracker
    ack.record = record
    ack.offset = offset
    ack._dead_letters = dead_letters
    ack._pending = commands  # one per source that routes this record
    tracker._inflight.append(offset)  # (``tracker.begin`` inline: once per record)
    tracker.routed = offset + 1
    return ack


class InlineAck(Tracked):
    """The ack of a record of a topic with one route, made once per partition and armed
    by the router for each record (see the module's docstring): making, tracking and
    freeing a :class:`RecordAck` was about a tenth of the cost of a record whose
    callback does little.

    Armed (``record`` set, ``tracked`` None), it stands for the record: a fork or a
    failure makes the record's RecordAck (:meth:`track`), to which it passes on from
    then on; a completion without one marks the record done. ``record`` is None once
    called: the router, finding it still set as it returns, knows the ack was kept
    (a queued command, an async one) and calls :meth:`kept`.
    """

    __slots__ = ("_dead_letters", "_tracker", "offset", "record", "tracked")

    def __init__(self, tracker: PartitionTracker, dead_letters: DeadLetters) -> None:
        self._tracker = tracker
        self._dead_letters = dead_letters
        self.record: InboundRecord | None = None
        self.offset = 0
        self.tracked: RecordAck | None = None

    def __call__(self, error: BaseException | None) -> None:
        tracked = self.tracked
        if tracked is None:
            if error is None:  # done, nothing forked
                self.record = None
                tracker = self._tracker
                if tracker.revoked:
                    return
                inflight = tracker._inflight
                if inflight:  # done behind older records: in flight, done, until they are
                    inflight.append(~self.offset)  # (marked done: see ``_inflight``)
                else:  # the oldest unfinished record: committable past it at once
                    tracker.committable = self.offset + 1
                return
            tracked = self.track()  # (to be dead-lettered)
        self.record = None
        tracked(error)

    def fork(self) -> Tracked:
        tracked = self.tracked
        if tracked is None:
            tracked = self.track()
        return tracked.fork()

    def track(self) -> RecordAck:
        """The record's RecordAck, its offset now in flight (the partition's newest)."""
        record = self.record
        assert record is not None, "an inline ack tracked once called"
        self.tracked = tracked = record_ack(self._tracker, record, self.offset, self._dead_letters)
        return tracked

    def kept(self) -> None:
        """The router returned and the ack was not called: whoever holds it (a mailbox,
        an async callback's task) calls it later. It passes on to the record's RecordAck
        from now on, and the partition arms a new one for its next record."""
        if self.tracked is None:
            self.track()
        if self._tracker.inline is self:
            self._tracker.inline = None


class RouteAck(Tracked):
    """The ack of one route's command, for a topic with several routes."""

    __slots__ = ("_root", "route")

    def __init__(self, root: RecordAck, route: str) -> None:
        self._root = root
        self.route = route

    def __call__(self, error: BaseException | None) -> None:
        if error is None:
            self._root(None)
        else:
            self._root.failed(error, self.route)

    def fork(self) -> Tracked:
        return self._root.fork()


class _ChildAck(Tracked):
    """The ack of work a record caused: a command to another agent, an insight."""

    __slots__ = ("_root",)

    def __init__(self, root: RecordAck) -> None:
        self._root = root

    def __call__(self, error: BaseException | None) -> None:
        self._root._child_done(error)

    def fork(self) -> Tracked:
        return self._root.fork()


class OffsetBook:
    """Every partition tracker of one source, and what to commit now."""

    def __init__(self) -> None:
        self.trackers: dict[TopicPartition, PartitionTracker] = {}
        self._committed: dict[TopicPartition, int] = {}

    def tracker(self, tp: TopicPartition) -> PartitionTracker:
        """The tracker of ``tp``, created when first seen."""
        tracker = self.trackers.get(tp)
        if tracker is None:
            tracker = self.trackers[tp] = PartitionTracker(tp)
        return tracker

    def to_commit(self, final: bool = False) -> dict[TopicPartition, int]:
        """Committable offsets that moved since the last call (marked as committed);
        ``final``: every committable offset, moved or not.

        Commits while running are asynchronous, and one that failed is only superseded
        by the next that moves: the last commit before the partitions go (a stop, a
        revoke) repeats them all, so an idle partition's failed commit is not left
        standing for its next owner to read twice."""
        moved: dict[TopicPartition, int] = {}
        for tp, tracker in self.trackers.items():
            offset = tracker.committable
            if offset is not None and (final or self._committed.get(tp) != offset):
                moved[tp] = offset
        self._committed.update(moved)
        return moved

    def release(self, partitions: tuple[TopicPartition, ...]) -> dict[TopicPartition, int]:
        """Stop tracking revoked partitions; returns their final committable offsets,
        committed before or not (see :meth:`to_commit`)."""
        final: dict[TopicPartition, int] = {}
        for tp in partitions:
            tracker = self.trackers.pop(tp, None)
            if tracker is None:
                continue
            tracker.revoked = True
            if tracker.committable is not None:
                final[tp] = tracker.committable
            self._committed.pop(tp, None)
        return final

    def routed_positions(self) -> dict[TopicPartition, int]:
        """Every tracked partition's position after its last routed record."""
        return {tp: t.routed for tp, t in self.trackers.items() if t.routed is not None}

    def positions(self) -> dict[TopicPartition, int]:
        """Every tracked partition's committable offset (where a restart resumes)."""
        return {tp: t.committable for tp, t in self.trackers.items() if t.committable is not None}

    @property
    def inflight(self) -> int:
        """Records in flight, over all partitions: those still being worked on, and
        those done behind an older one still worked on, whose offsets cannot commit
        before it (what ``max_inflight`` bounds, as the tracker holds them all)."""
        return sum(len(tracker) for tracker in self.trackers.values())


CommitFunction = Callable[[dict[TopicPartition, int]], None]
