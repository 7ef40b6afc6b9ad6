"""Timers: firing agents' due timers in order, on the system clock or a test's fake one.

A mixin of :class:`~.plane.Plane`, kept apart so the plane's module holds addressing,
messages and links. Timers belong to the plane, not to agent objects: a due timer of a
passivated agent activates it again (see :mod:`.timers` for the wheel).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

from swimstream.errors import AgentRestoreError, DefinitionError, RoutingError
from swimstream.runtime.agent_record import check_timer_args
from swimstream.runtime.cell import handle_timer
from swimstream.runtime.clock import FakeClock

if TYPE_CHECKING:
    from swimstream.runtime.cell import AgentCell
    from swimstream.runtime.clock import Clock
    from swimstream.runtime.timers import TimerEntry, TimerWheel

log = logging.getLogger("swimstream.agent")


class TimerDriving:
    """The plane's timer methods (a mixin of :class:`~.plane.Plane`)."""

    clock: Clock
    timers: TimerWheel
    _timer_wakeup: asyncio.Event

    def _cell(self, node_uri: str, lane: str | None = None) -> AgentCell:
        raise NotImplementedError

    async def settle(self) -> None:
        raise NotImplementedError

    def passivate_idle(self) -> int:
        raise NotImplementedError

    def _schedule_timer(
        self, node_uri: str, method: str, args: tuple[Any, ...], delay: float, period: float | None
    ) -> TimerEntry:
        if not callable(getattr(self._cell(node_uri).agent, method, None)):
            raise DefinitionError(f"agent {node_uri} has no method {method!r} to call")
        check_timer_args(method, args)
        entry = self.timers.schedule(node_uri, method, args, self.clock.time() + delay, period)
        self._timer_wakeup.set()
        return entry

    def _fire_due_timers(self, upto: float | None = None) -> None:
        """Post the timers due by ``upto`` (by the clock's time when None)."""
        for entry in self.timers.pop_due(self.clock.time() if upto is None else upto):
            if entry.in_flight:
                continue  # its last tick has not run yet: no pile-up behind a busy agent
            try:
                cell = self._cell(entry.node_uri)
            except AgentRestoreError:
                # Logged when its agent failed to load. A one-shot stays pending, and
                # stored as it was, for a start whose code loads the agent.
                continue
            except RoutingError as exc:
                # A stored timer of a route a deploy removed (re-armed at start without
                # its agent): raised, it ended the timer task. It goes, as such a link does.
                log.warning("a stored timer of %s is dropped: %s", entry.node_uri, exc)
                entry.cancel()
                continue
            entry.in_flight = True
            cell.post(handle_timer, entry, None, entry.tick_finished)

    async def _run_timers(self) -> None:
        while True:
            self._timer_wakeup.clear()
            due = self.timers.next_due()
            if due is not None and due <= self.clock.time():
                self._fire_due_timers()
                await asyncio.sleep(0)
                continue
            await self.clock.wait_until(due, self._timer_wakeup)

    async def advance(self, seconds: float) -> None:
        """Move a fake clock forward, firing due timers in order and settling after each.

        A timer is due here when it is due by the time reached, give or take the
        rounding of two float sums (its due time is the float ``now + delay``): a timer
        set ``d`` seconds ahead fires in the ``advance`` that completes ``d``, at most a
        few tenths of a microsecond early, rather than one advance late.
        """
        clock = self.clock
        if not isinstance(clock, FakeClock):
            raise TypeError("advance() needs a plane with a FakeClock (swimstream.testing)")
        end = clock.after(seconds)
        target = float(end)
        limit = target + 2 * math.ulp(target)
        await self.settle()
        while (due := self.timers.next_due()) is not None and due <= limit:
            clock.set(end if due > end else due)
            self._fire_due_timers(due)
            self.passivate_idle()
            await self.settle()
        clock.set(end)
        self.passivate_idle()
        await self.settle()
