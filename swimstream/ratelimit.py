"""At most one log line per interval for things that can repeat thousands of times a
second (a callback failing on every record, a broker outage failing every delivery, a
client sending malformed requests), with the count of those held back.

The first line is always logged, whatever the clock reads; after it, one line per
:attr:`RateLimit.interval` at most, saying how many were held back since the line before
(:func:`more_since`). A user that must not let a burst that ended read as one event keeps
the last one held back and asks for it once the interval is over
(:meth:`RateLimit.take_held`), from its housekeeping and as it stops.

One limiter paces one kind of line; a user that paces several kinds (a callback site, a
broker error code) keeps one per kind. The clock is injected so tests step it rather
than sleep. Not locked: a race between threads can only make one count slightly low.
This module imports nothing of swimstream, so every layer may use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

LOG_INTERVAL = 10.0
"""Seconds between two lines of one kind, unless a user says otherwise."""

Event = TypeVar("Event")


class RateLimit(Generic[Event]):
    """Decides which of a stream of events of one kind get a log line, and counts the
    others. ``Event`` is what a user keeps of one held back, to log it later."""

    __slots__ = ("_clock", "_held_event", "_logged_at", "held", "interval")

    def __init__(
        self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._logged_at: float | None = None  # (None: no line yet, so the next one goes out)
        self.held = 0
        """Events held back since the last line."""
        self._held_event: Event | None = None

    def admit(self, event: Event | None = None) -> int | None:
        """Whether to log this event now: the number held back since the last line (0
        for none) when so, and then counted as logged; None when it is held back, counted
        and kept (``event``, cleared once a line is logged, so a held exception's frames
        do not stay alive) for :meth:`take_held`."""
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self.interval:
            self.held += 1
            self._held_event = event
            return None
        return self._logged(now)

    def take_held(self, everything: bool = False) -> tuple[Event, int] | None:
        """The last event held back and the number of others held with it, once the
        interval since the last line is over (at once with ``everything``, as its user
        stops), counted as logged; None when there is none or it is not time yet."""
        event = self._held_event
        if event is None:
            return None
        now = self._clock()
        if not everything and self._logged_at is not None and now - self._logged_at < self.interval:
            return None
        return event, self._logged(now) - 1

    def _logged(self, now: float) -> int:
        held = self.held
        self._logged_at, self.held, self._held_event = now, 0, None
        return held


def more_since(held: int, kind: str = "") -> str:
    """The end of a line logged after ``held`` others were held back: `` (3 more since
    the last report)``, with ``kind`` after "more" (`` at this site``); empty for none."""
    return f" ({held} more{kind} since the last report)" if held else ""
