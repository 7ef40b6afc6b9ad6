"""Backpressure from the sinks: the sources pause while the producers hold too much.

A record is in flight until its insights are delivered, so the in-flight bound of the
source loop (:class:`~swimstream.streams.ingest.SourceRunner`) also bounds the insights
waiting for a broker, but only as many records: an agent that publishes fifty insights
per record puts 500,000 in the producer's queue behind 10,000 records in flight, five
times what librdkafka's queue holds (``queue.buffering.max.messages``, 100,000 by
default). Once that queue is full, ``produce`` serves delivery reports on the event loop
until there is room, for up to 10 s, then fails the callback: a broker that slowed down
or froze for a few seconds blocked the whole instance (``/healthz`` unanswered) for 10 s
at a time, dead-lettered records that had nothing wrong with them, and stopped the
instance (exit 1) some 20 s after the freeze, where the delivery timeout
(``message.timeout.ms``, 300 s) was meant to decide.

So the sources also pause while any sink holds :attr:`SinkPressure.limit` records or
more unacknowledged, until it drained to half of that. It is looked at once per batch of
records, never per record.

While the sources are paused for the records in flight, coalesced lane sinks flush at
once (:meth:`SinkPressure.relieve`): a record whose change waits in one is in flight
until that change's record is delivered, so past the in-flight bound (10,000 records)
the sources stood still until the next flush, and read at most that many records per
``coalesce`` interval (2,000 a second at ``coalesce: 5s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from swimstream.streams.connector import SinkConnector


@dataclass(frozen=True, slots=True)
class SinkLimit:
    """One sink and the unacknowledged records it may hold before the sources pause."""

    sink: SinkConnector
    limit: int


class Coalescing(Protocol):
    """A sink that holds changes back until it flushes (a coalesced lane sink)."""

    @property
    def pending(self) -> int: ...

    def flush(self) -> None: ...


class SinkPressure:
    """Whether the sinks hold too many unacknowledged records for the sources to read on."""

    def __init__(self, limits: Sequence[SinkLimit], coalescing: Sequence[Coalescing] = ()) -> None:
        self._limits = tuple(limit for limit in limits if limit.limit > 0)
        self._coalescing = tuple(coalescing)

    def relieve(self) -> None:
        """The sources are paused for the records in flight: flush the coalesced lane
        sinks holding changes, so that the records behind them can finish (see the
        module docstring). Not for a crowded sink, which the flush would crowd more."""
        for sink in self._coalescing:
            if sink.pending:
                sink.flush()

    def crowded(self) -> bool:
        """A sink holds its limit or more: pause the sources."""
        return any(limit.sink.pending >= limit.limit for limit in self._limits)

    def eased(self) -> bool:
        """Every sink drained to half its limit or less: the sources may read on."""
        return all(limit.sink.pending <= limit.limit // 2 for limit in self._limits)
