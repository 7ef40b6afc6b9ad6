"""Hybrid logical clock: causally ordered timestamps that stay close to wall time.

A timestamp is one ``int``: milliseconds since the epoch shifted left by
:data:`LOGICAL_BITS`, plus a logical counter in the low bits. One integer compares and
hashes faster than a pair, and that comparison sits on the hot path of every CRDT op.

The clock never goes backwards: when the wall clock stalls or steps back, the logical
part advances instead. A burst of more than 65,536 events in one millisecond carries
into the millisecond part; the clock then runs a little ahead of wall time until the
wall catches up, which keeps it monotonic at the cost of a small drift.

A *ticked* clock reads the wall only when told to (:meth:`HybridLogicalClock.tick`):
between ticks, each timestamp is the last one plus one. It is as monotonic as the
other, and as far ahead of every timestamp it observed; it is close to wall time only
as of its last tick, behind it by as long as has passed since. A plane's clock is
ticked (once a batch of records, a drain of the mailboxes, a passivation pass: see
``Scheduler.note_time``), because the read of the wall at every write was some 700
machine instructions: a towers reading writes three times (59,738 to 57,439), the
peers' devices bench twice (22,530 to 21,079).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from time import time

LOGICAL_BITS = 16
"""Low bits of a timestamp that hold the logical counter."""


def wall_millis() -> int:
    """Milliseconds since the Unix epoch, from the system clock.

    Read as a float (``time.time``), as :meth:`HybridLogicalClock.now` reads it inline:
    a float is made and compared for less than ``time_ns``'s 61-bit integer (CPython
    3.11 specializes a comparison of two floats, not of two such integers: about 100
    machine instructions a timestamp, four a towers reading), and its precision, a
    quarter of a microsecond, is all a millisecond needs."""
    return int(time() * 1000.0)


def timestamp_millis(ts: int) -> int:
    """The wall-clock part of a timestamp, in milliseconds since the epoch."""
    return ts >> LOGICAL_BITS


def timestamp_logical(ts: int) -> int:
    """The logical counter part of a timestamp."""
    return ts & ((1 << LOGICAL_BITS) - 1)


class HybridLogicalClock:
    """A monotonic timestamp source, merged with the timestamps of remote replicas.

    ``wall`` returns milliseconds; tests pass a fake one to drive skew and stalls.
    ``ticked``: the wall is read at :meth:`tick` only (see the module docstring), once
    as it is made.
    """

    __slots__ = ("_last", "_millis_end", "_system", "_wall", "ticked")

    def __init__(
        self, wall: Callable[[], int] = wall_millis, last: int = 0, ticked: bool = False
    ) -> None:
        self._wall = wall
        self._last = last
        self.ticked = ticked
        """Whether the wall is read at :meth:`tick` only. The writes that take the usual
        timestamp inline (see :meth:`now`) test this before reading the wall."""
        # The system clock is read inline: every lane write takes a timestamp, and the
        # call of ``wall_millis`` was a third of the cost of taking one.
        self._system = wall is wall_millis
        self._millis_end = 0.0 if self._system else -math.inf
        """(The system clock) The end of the millisecond of its last reading, as a float
        of milliseconds: a reading before it gives that reading's physical time or an
        earlier one, which ``_last`` is not behind (it only grows), so the next timestamp
        is ``_last + 1``. Most are taken so: hundreds a millisecond, where the conversion
        and the shift of the full reading were most of the cost of one. Minus infinity
        for any other wall, so that the usual case tests nothing else (a test of the
        wall first was some 80 machine instructions a timestamp: the peers' devices
        bench takes two a reading, 24,505 to 24,345)."""
        if ticked:
            self.tick()

    @property
    def last(self) -> int:
        """The most recent timestamp issued or observed."""
        return self._last

    def now(self) -> int:
        """A timestamp greater than every one issued or observed before.

        The writes of every lane (``LWWMap.put`` and ``put_unseen``, ``LWWRegister.set``
        and ``set_unseen``) take the usual case, a reading within the millisecond of the
        last, inline, and call this otherwise: change them together. The call was some
        200 machine instructions a write (towers takes three a reading, 61,420 to
        60,800; the peers' devices bench two, 23,380 to 22,880). A ticked clock reads
        no wall here: its last timestamp plus one."""
        if self.ticked:
            self._last = last = self._last + 1
            return last
        reading = time() * 1000.0  # (``wall_millis`` inline, a float until needed)
        if reading < self._millis_end:
            self._last = last = self._last + 1
            return last
        if self._system:
            millis = int(reading)
            self._millis_end = millis + 1.0
            physical = millis << LOGICAL_BITS
        else:
            physical = self._wall() << LOGICAL_BITS
        if physical <= self._last:
            physical = self._last + 1
        self._last = physical
        return physical

    def tick(self) -> None:
        """Read the wall: the next timestamp is not behind it (nor behind any before).

        What a ticked clock does instead of reading the wall at every timestamp; on
        another, a reading the next :meth:`now` would take anyway."""
        physical = self._wall() << LOGICAL_BITS
        if physical > self._last:
            self._last = physical - 1  # (the next timestamp is the wall's own)

    def observe(self, remote_ts: int) -> int:
        """Merge a timestamp seen on a remote op; returns the new local time.

        After this, :meth:`now` is greater than ``remote_ts``, so an op made here in
        reaction to a remote one is ordered after it.
        """
        if remote_ts <= self._last:
            # Not behind: the next now() orders after it without reading the wall.
            return self._last
        physical = self._wall() << LOGICAL_BITS
        self._last = physical if physical > remote_ts else remote_ts + 1
        return self._last
