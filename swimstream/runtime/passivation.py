"""Passivation: unloading idle agents into the store, and bringing them back on use.

An agent idle for ``idle_timeout``, or beyond ``max_active`` agents in memory (least
recently used first), is passivated: ``on_stop`` runs, its lanes and links are dumped
into the plane's store, and its object is dropped. Its links and timers stay with the
plane, so a delivery or a due timer activates it again (see :mod:`.plane`). The plane's
cells are kept in least recently used order by the scheduler, after each turn, as
coarsely as a batch of a source (see ``Scheduler.now``). Kept
apart from the plane so the plane's module holds addressing, messages and links only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from swimstream.agent import Agent
from swimstream.errors import LIFECYCLE, DefinitionError, StoreError
from swimstream.runtime.agent_record import dump_agent
from swimstream.runtime.links import LinkEnd

if TYPE_CHECKING:
    from collections.abc import Callable

    from swimstream.agent import Uplink
    from swimstream.crdt import HybridLogicalClock
    from swimstream.runtime.agent_record import StoredAgent
    from swimstream.runtime.cell import AgentCell
    from swimstream.runtime.clock import Clock
    from swimstream.runtime.failures import FailureLog
    from swimstream.runtime.links import LinkRegistry
    from swimstream.runtime.scheduler import Scheduler
    from swimstream.runtime.store import AgentStore, StateObserver
    from swimstream.runtime.timers import TimerWheel

log = logging.getLogger("swimstream.agent")


@dataclass(slots=True)
class Crash:
    """Who hears of a plane that broke, and what broke it: one attribute of the plane,
    which keeps under the 30 whose keys CPython shares (see the test)."""

    listener: Callable[[BaseException], None] | None
    error: BaseException | None = None


@dataclass(slots=True)
class Limits:
    """When agents are passivated; one attribute of the plane (see :class:`Crash`).

    Passes run every second at most, which a burst of new agents (a hand-over's
    catch-up, a replay) outran: an instance limited to 1,500 agents held 2,889 between
    two passes. Beyond ``overflow`` agents, a pass is asked for at once, to run as the
    current callback returns (never inside an agent's turn).
    """

    idle_timeout: float | None
    max_active: int | None
    overflow: float = math.inf
    """Agents in memory beyond which a pass is asked for: a tenth over ``max_active``
    (at least 16), so that a pass is not run for each new agent at the limit."""
    asked: bool = False

    def __post_init__(self) -> None:
        if self.max_active is not None:
            self.overflow = self.max_active + max(16, self.max_active // 10)


class Passivation:
    """The plane's passivation methods (a mixin of :class:`~.plane.Plane`)."""

    clock: Clock
    hlc: HybridLogicalClock
    store: AgentStore
    _limits: Limits
    _closed: bool
    _cells: dict[str, AgentCell]
    _state: StateObserver | None
    _passivations: int
    timers: TimerWheel
    links: LinkRegistry
    failures: FailureLog
    _crash: Crash
    _scheduler: Scheduler

    def unlink(self, node_uri: str, lane: str, uplink: Uplink) -> None:
        raise NotImplementedError

    def _report_failure(
        self, cell: AgentCell, lane: str, callback: str, exc: BaseException
    ) -> None:
        raise NotImplementedError

    def _activate(
        self, node_uri: str, lane: str | None = None, stored: StoredAgent | None = None
    ) -> AgentCell:
        raise NotImplementedError

    def activate_existing(self, node_uri: str) -> bool:
        """Whether the agent at ``node_uri`` exists, in memory or stored, making none that
        does not (a read, a GET over HTTP, makes no agent). A stored one comes back into
        memory from that one read of the store: asking the store whether it exists, then
        activating it, read and decoded it twice."""
        if node_uri in self._cells:
            return True
        stored = self._load(node_uri)
        if stored is None:
            return False
        self._activate(node_uri, stored=stored)
        return True

    def _load(self, node_uri: str) -> StoredAgent | None:
        """An agent's stored record; a store that cannot be read crashes the plane.

        A damaged local store is no fault of the agent's: taken for one (an
        :class:`~swimstream.errors.AgentRestoreError`), its record went to the dead
        letters, the next checkpoint committed past it, and the restart, rebuilding
        from the changelog, lost what it held. Crashed, the plane lets no checkpoint
        cut past what it could not handle, and its owner stops (the next start sets
        the file aside and rebuilds it)."""
        try:
            return self.store.load(node_uri)
        except StoreError as exc:
            if self._crash.error is None:
                self._crash.error = exc
                log.critical("loading %s: %s", node_uri, exc)
                if self._crash.listener is not None:
                    self._crash.listener(exc)
            raise

    def note_time(self) -> None:
        """Read the clock for the turns that follow: a source calls this once a batch,
        before the commands it runs at once (``submit(..., now=True)``), which note that
        time as their agents' last use (see ``Scheduler.now``: recency is as coarse as a
        batch, and moves a second at a time) and whose writes stamp their ops logically
        after it (the plane's hybrid logical clock is ticked: see
        ``swimstream.crdt.clock``). Each passivation pass and each drain of the mailboxes
        reads it too."""
        self._scheduler.note_time()

    def passivate_idle(self) -> int:
        """Passivate agents idle past ``idle_timeout`` and, least recently used first,
        those beyond ``max_active``. Returns how many were passivated."""
        self._scheduler.note_time()  # (bounds how old a time a turn outside a batch notes)
        limits = self._limits
        limits.asked = False
        excess = 0 if limits.max_active is None else len(self._cells) - limits.max_active
        idle_timeout = limits.idle_timeout
        cutoff = None if idle_timeout is None else self.clock.time() - idle_timeout
        doomed: list[AgentCell] = []
        for cell in self._cells.values():  # least recently used first
            expired = cutoff is not None and cell.last_used <= cutoff
            if excess - len(doomed) <= 0 and not expired:
                break
            if cell.idle:
                doomed.append(cell)
        return sum(1 for cell in doomed if self._passivate(cell))

    def _passivate_soon(self) -> None:
        """Ask for a pass as the current callback returns (once until it runs)."""
        if not self._limits.asked:
            self._limits.asked = True
            asyncio.get_running_loop().call_soon(self._asked_pass)

    def _asked_pass(self) -> None:
        if not self._closed and self._limits.asked:
            self.passivate_idle()

    def passivate(self, node_uri: str) -> bool:
        """Unload the agent now if it is idle; True when it was passivated."""
        cell = self._cells.get(node_uri)
        return cell is not None and cell.idle and self._passivate(cell)

    def forget_agents(self, select: Callable[[str], bool]) -> int:
        """Drop the agents ``select`` names, in memory or passivated, with their timers
        and the links they opened, storing nothing; returns how many were in memory.

        For state that belongs elsewhere now: their shard moved to another instance, or
        is about to be restored from the changelog, which holds it (a link from an agent
        to one of their lanes stays, marked: it reaches the agent loaded afresh, which
        syncs it again, so the subscriber's replica takes the restored state; one from
        outside, a web stream, is dropped and told, so that its client links again, to
        a fresh sync or to the instance that has the agent now). ``on_stop`` does not
        run: what it would see is a copy that is no longer the agent. Call with the
        plane settled (as at a checkpoint's cut): no turn of theirs may be under way.
        """
        gone = [node for node in self._cells if select(node)]
        for node in gone:
            del self._cells[node]
        for timer in list(self.timers):
            if select(timer.node_uri):
                timer.cancel()
        for end in self.links.ends():
            if select(end.subscriber):
                end.closed = True
                self.links.pop_end(end.subscriber, end.downlink_id)
                self.unlink(end.node_uri, end.lane, end)
        for node in self.links.linked_nodes():
            if select(node):
                for lane, uplinks in list((self.links.linked_lanes(node) or {}).items()):
                    for uplink in list(uplinks):
                        if isinstance(uplink, LinkEnd):
                            uplink.resync_at = self.hlc.now()
                        else:
                            self.unlink(node, lane, uplink)
                            uplink.unlinked()
        return len(gone)

    def _stop_agent(self, cell: AgentCell) -> None:
        """Run the agent's ``on_stop`` once (skipped when its class keeps the default)."""
        if cell.stopped or type(cell.agent).on_stop is Agent.on_stop:
            return
        cell.stopped = True
        try:
            stopped: Any = cell.agent.on_stop()  # type: ignore[func-returns-value]
            if asyncio.iscoroutine(stopped):
                stopped.close()
                raise DefinitionError("on_stop must be a plain function, not async")
        except Exception as exc:
            self._report_failure(cell, LIFECYCLE, "on_stop", exc)

    def _stop_all(self, put_away: bool) -> None:
        """At close: stop every agent; ``put_away`` also dumps each into the store.

        A durable store needs no dump: the final checkpoint captures the lanes of agents
        still in memory, and dumping a million agents would take a minute of shutdown.
        """
        for cell in list(self._cells.values()):
            if put_away:
                self._passivate(cell, force=True)
            else:
                self._stop_agent(cell)

    def _passivate(self, cell: AgentCell, force: bool = False) -> bool:
        self._stop_agent(cell)
        if not force and not cell.idle:
            # on_stop queued work for the agent itself: it stays until that is done and
            # goes when idle again, with no second on_stop (run at each try, it ran every
            # housekeeping pass, queued the same work, and the agent never went).
            return False
        try:
            stored = dump_agent(cell.agent)
        except Exception as exc:
            # A value the store cannot hold (CodecError), or an agent broken some other
            # way: it stays in memory, reported, and housekeeping goes on with the
            # others (raised, it would end the task that passivates every agent).
            self._report_failure(cell, LIFECYCLE, "passivate", exc)
            if not force:
                return False
            stored = None
        if self._state is not None:
            self._state.passivating(cell.agent)
        if stored is not None:
            self.store.save(cell.node_uri, stored)
        del self._cells[cell.node_uri]
        self._passivations += 1
        return True

    async def _housekeep(self) -> None:
        """Every second at most: passivate, and log the callback failures held back
        whose interval is over (a plane that never passivates runs it for those)."""
        interval = min(1.0, (self._limits.idle_timeout or 4.0) / 4)
        never = asyncio.Event()
        while True:
            await self.clock.wait_until(self.clock.time() + interval, never)
            self.passivate_idle()
            self.failures.report_held()
