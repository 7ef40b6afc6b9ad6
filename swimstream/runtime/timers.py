"""Pending timers of every agent, active or passivated, in one heap.

Timers belong to the plane, not to agent objects, so an agent can be passivated with
timers pending and is woken (reloaded) when one comes due. A timer names an agent
method, not a function object, for the same reason and so that timers can be stored.

A repeating timer that fell behind (the process was down, or the loop was busy) fires
once and then resumes its period from now: it never fires a burst to catch up. Nor
does one whose agent is busy (in an ``async`` callback, or a tick slower than the
period): while its last tick waits in the mailbox or runs (:attr:`TimerEntry.in_flight`),
the plane posts no other, so ticks never pile up behind the agent.

A timer fires when its callback runs in the agent's turn, not when it falls due: the
tick may wait in the mailbox behind messages that came first, and one of those may
cancel it (an alarm disarmed by the record queued before it). So a one-shot stays
pending until its tick begins (:meth:`TimerEntry.begin`), where a timer cancelled
meanwhile is skipped: ``cancel`` keeps its word, and ``pending_timers`` still lists it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class TimerEntry:
    """One pending call of ``method(*args)`` on the agent at ``node_uri``."""

    id: int
    node_uri: str
    method: str
    args: tuple[Any, ...]
    due: float
    period: float | None
    wheel: TimerWheel = field(repr=False)
    cancelled: bool = False
    fired: bool = False
    in_flight: bool = False
    """Its last tick is queued or running: the plane skips the ticks due meanwhile."""
    anchor: float | None = None
    """A repeating timer's due time it counts its periods from (None: ``due``)."""
    periods: int = 0
    """Periods since :attr:`anchor`: the next due time is ``anchor + periods * period``,
    rounded once. Adding the period to each due time in turn piled its float error up
    tick after tick (``every(0.7)`` fell behind a clock moved 7 s at a time, and a test
    saw its tenth tick a step late)."""

    @property
    def pending(self) -> bool:
        """False once a one-shot timer fired (its callback began), or any timer was
        cancelled."""
        return not self.cancelled and not (self.fired and self.period is None)

    def begin(self) -> bool:
        """Its tick starts in the agent's turn: False when it was cancelled since it
        fell due (the tick is skipped). A one-shot stops being pending here, before its
        callback runs, so that the callback may set the next one (``pending_timers``
        does not list itself)."""
        if self.cancelled:
            return False
        if self.period is None and not self.fired:
            self.fired = True
            self.wheel._forget(self)
            self.wheel._changed(self.node_uri)
        return True

    def tick_finished(self, _error: BaseException | None) -> None:
        """The ack of a tick's message: called when it ran, failed or, if ``async``,
        ended, so the next due time posts a tick again."""
        self.in_flight = False

    def cancel(self) -> None:
        """Stop the timer; harmless when it already fired."""
        if not self.cancelled:
            self.cancelled = True
            self.wheel._forget(self)


class TimerWheel:
    """A heap of timers by due time, with an index per agent."""

    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        self._heap: list[tuple[float, int, TimerEntry]] = []
        self._next_id = 1
        self._by_node: dict[str, dict[int, TimerEntry]] = {}
        self._repeating: dict[tuple[str, str], TimerEntry] = {}
        self._on_change = on_change
        """Told the node URI whenever one of its timers is added, fired or cancelled."""
        self._count = 0  # kept, not summed: statistics read it every second (dashboards)

    def __len__(self) -> int:
        return self._count

    def schedule(
        self,
        node_uri: str,
        method: str,
        args: tuple[Any, ...],
        due: float,
        period: float | None,
        timer_id: int | None = None,
    ) -> TimerEntry:
        """Add a timer. A repeating one replaces nothing: the one running for the same
        method is returned, re-armed to ``due`` when ``period`` differs from its own
        (the code asks for another period, or a deploy changed it since it was stored)."""
        if period is not None:
            running = self._repeating.get((node_uri, method))
            if running is not None and running.pending:
                if running.period != period:
                    running.period = period
                    running.due = due  # its old place in the heap no longer matches: skipped
                    running.anchor = None
                    heapq.heappush(self._heap, (due, running.id, running))
                    if self._on_change is not None:
                        self._on_change(node_uri)
                return running
        if timer_id is None:
            timer_id = self._next_id
        self._next_id = max(self._next_id, timer_id + 1)
        entry = TimerEntry(
            timer_id,
            node_uri,
            method,
            tuple(args),
            due,
            period,
            self,
        )
        timers = self._by_node.setdefault(node_uri, {})
        if entry.id not in timers:
            self._count += 1
        timers[entry.id] = entry
        if period is not None:
            self._repeating[(node_uri, method)] = entry
        heapq.heappush(self._heap, (due, entry.id, entry))
        if self._on_change is not None:
            self._on_change(node_uri)
        return entry

    def next_due(self) -> float | None:
        """When the earliest live timer is due (cancelled ones are dropped lazily)."""
        heap = self._heap
        while heap and not heap[0][2].pending:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[TimerEntry]:
        """The timers due at ``now``, earliest first; repeating ones are re-armed. A
        one-shot stays pending until its tick begins (:meth:`TimerEntry.begin`)."""
        fired: list[TimerEntry] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, entry = heapq.heappop(heap)
            if not entry.pending or entry.due != due:
                continue
            fired.append(entry)
            if entry.period is not None:
                entry.fired = True
                missed = max(0, int((now - due) // entry.period))
                if entry.anchor is None:
                    entry.anchor, entry.periods = due, 0
                entry.periods += missed + 1
                entry.due = entry.anchor + entry.periods * entry.period
                heapq.heappush(heap, (entry.due, entry.id, entry))
                self._changed(entry.node_uri)
        return fired

    def for_node(self, node_uri: str) -> list[TimerEntry]:
        """The pending timers of one agent."""
        return [t for t in self._by_node.get(node_uri, {}).values() if t.pending]

    def __iter__(self) -> Iterator[TimerEntry]:
        for timers in self._by_node.values():
            yield from (t for t in timers.values() if t.pending)

    def _forget(self, entry: TimerEntry) -> None:
        timers = self._by_node.get(entry.node_uri)
        if timers is not None:
            if timers.pop(entry.id, None) is not None:
                self._count -= 1
            if not timers:
                del self._by_node[entry.node_uri]
        if self._repeating.get((entry.node_uri, entry.method)) is entry:
            del self._repeating[(entry.node_uri, entry.method)]
        if entry.cancelled:
            self._changed(entry.node_uri)

    def _changed(self, node_uri: str) -> None:
        if self._on_change is not None:
            self._on_change(node_uri)
