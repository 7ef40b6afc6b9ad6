"""Time for the runtime: the system clock in production, a fake one under test.

Timers are due at wall-clock times (seconds since the epoch), not monotonic ones, so a
pending timer means the same thing after a restart: one due during the downtime fires
once, right after. The fake clock moves only when a test says so, which makes timer
tests exact and instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from fractions import Fraction
from typing import Protocol

from swimstream.crdt.clock import wall_millis


class Clock(Protocol):
    """Where the runtime reads the time and waits for it."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def wall_millis(self) -> int:
        """Milliseconds since the epoch (feeds the hybrid logical clock)."""
        ...

    async def wait_until(self, deadline: float | None, wakeup: asyncio.Event) -> None:
        """Return at ``deadline`` (never, if None) or as soon as ``wakeup`` is set."""
        ...


class SystemClock:
    """The machine's wall clock."""

    # Plain functions rather than methods: every lane write reads the one, and every
    # turn of a passivating plane the other (a Python frame is most of such a reading).
    wall_millis = staticmethod(wall_millis)
    time = staticmethod(time.time)

    async def wait_until(self, deadline: float | None, wakeup: asyncio.Event) -> None:
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout)


class FakeClock:
    """A clock that stands still until :meth:`set` or :meth:`advance` moves it.

    It keeps the time exactly (a :class:`~fractions.Fraction`) and reads it as the float
    nearest: in floats, ten ``advance(0.1)`` from today's epoch (where a float's step
    is a quarter of a microsecond) came to 0.999999 s, short of a timer set 1 s ahead,
    and a thousand ``advance(0.01)`` to 9.999990 s.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._exact = Fraction(start)
        self._now = start
        self._moved = asyncio.Event()

    def time(self) -> float:
        return self._now

    def wall_millis(self) -> int:
        return int(self._now * 1000)

    def set(self, now: float | Fraction) -> None:
        """Move to ``now`` (never backwards)."""
        if now > self._exact:
            self._exact = Fraction(now)
            self._now = float(self._exact)
            self._moved.set()

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self.set(self.after(seconds))

    def after(self, seconds: float) -> Fraction:
        """The exact time ``seconds`` from now (what :meth:`advance` moves to)."""
        return self._exact + Fraction(seconds)

    async def wait_until(self, deadline: float | None, wakeup: asyncio.Event) -> None:
        while (deadline is None or self._now < deadline) and not wakeup.is_set():
            self._moved.clear()
            moved = asyncio.ensure_future(self._moved.wait())
            woken = asyncio.ensure_future(wakeup.wait())
            try:
                await asyncio.wait({moved, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()
                woken.cancel()
