"""The plane: every agent of one process, created on first use and run by one scheduler.

A plane maps node URIs to agents through route patterns, creates an agent the first
time anything addresses it (a command, a link, a read), and passivates agents that sit
idle (``idle_timeout``) or exceed the active budget (``max_active``, least recently
used first) into its :class:`~swimstream.runtime.store.AgentStore`, from which they
come back with lanes and links intact on their next use. Timers and links are plane
state, so they outlive the agent objects they belong to.

Everything runs on one asyncio loop: agent callbacks are plain function calls from the
scheduler, so an agent needs no locks and the hot path has no awaits.

Use it as an async context manager (``async with Plane(routes) as plane:``), which
owns the scheduler, the timer loop and housekeeping as tasks and ends them on exit.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from swimstream.agent import Agent, Downlink, Lane, LaneObserver, Uplink
from swimstream.crdt import HybridLogicalClock, Op
from swimstream.errors import (
    AgentRestoreError,
    ClosedResourceError,
    LaneNotFoundError,
    NodeNotFoundError,
    RoutingError,
    StoreError,
)
from swimstream.routing import RoutePattern
from swimstream.runtime.agent_record import (
    LinkSpec,
    StoredAgent,
    TimerSpec,
    dump_links,
    dump_timers,
    restore_agent,
)
from swimstream.runtime.cell import (
    AgentCell,
    handle_call,
    handle_command,
    handle_delivery,
    handle_link,
    handle_remote_op,
    handle_start,
)
from swimstream.runtime.clock import Clock, SystemClock
from swimstream.runtime.failures import FailureLog
from swimstream.runtime.links import LinkEnd, LinkRegistry
from swimstream.runtime.passivation import Crash, Limits, Passivation
from swimstream.runtime.plane_timers import TimerDriving
from swimstream.runtime.reports import Insight, PlaneStatistics
from swimstream.runtime.routes import agent_routes
from swimstream.runtime.scheduler import Scheduler
from swimstream.runtime.store import AgentStore, MemoryAgentStore, StateObserver
from swimstream.runtime.timers import TimerWheel

log = logging.getLogger("swimstream.agent")


class Plane(Passivation, TimerDriving):
    """Runs agents for a set of route patterns in this process."""

    def __init__(
        self,
        routes: Mapping[str, type[Agent]],
        *,
        clock: Clock | None = None,
        store: AgentStore | None = None,
        replica_id: str | None = None,
        mailbox_capacity: int = 1000,
        idle_timeout: float | None = None,
        max_active: int | None = None,
        publisher: Callable[[Insight], None] | None = None,
        on_activate: Callable[[str], None] | None = None,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        """``on_crash`` is told if a task of the plane (its scheduler, its timers) fails."""
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.hlc = HybridLogicalClock(self.clock.wall_millis, ticked=True)  # (by the scheduler)
        self.replica_id = replica_id or f"p-{secrets.token_hex(4)}"
        self.mailbox_capacity = mailbox_capacity
        self._limits = Limits(idle_timeout, max_active)
        self.store: AgentStore = store if store is not None else MemoryAgentStore()
        self.links = LinkRegistry()
        self.timers = TimerWheel(self._timers_changed)
        self._state: StateObserver | None = None
        self._restoring = False
        self.insights: list[Insight] = []
        self.failures = FailureLog()
        self._publisher = publisher
        self._on_activate = on_activate  # told each node URI made in memory
        self._routes = agent_routes(routes)
        self._cells: dict[str, AgentCell] = {}
        self._unrestorable: dict[str, AgentRestoreError] = {}
        self._observers: list[tuple[str | None, str | None, bool, LaneObserver]] = []
        self._observer_tables: dict[str, dict[str, tuple[LaneObserver, ...]]] = {}
        passivating = idle_timeout is not None or max_active is not None
        recency = self.clock.time if passivating else None
        self._scheduler = Scheduler(self._report_failure, self._cells, recency, self.hlc)
        self.run_now = self._scheduler.run_now
        """Run a command at once if its agent is in memory and idle (else False: submit
        it): a source's usual record, without the call of :meth:`submit`."""
        self._timer_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.dropped = 0
        """Messages its close left unhandled (its work did not finish in time)."""
        self._crash = Crash(on_crash)
        self._activations = 0
        self._passivations = 0
        self._commands = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Plane:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._scheduler.run(), name="swimstream-scheduler"),
            loop.create_task(self._run_timers(), name="swimstream-timers"),
            loop.create_task(self._housekeep(), name="swimstream-housekeeping"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_ended)
        return self

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A task of the plane that ends by itself broke: agents' turns or timers stop,
        and whoever runs the plane must hear of it rather than carry on (a checkpoint
        would cut past records no agent handled)."""
        crashed = None if task.cancelled() else task.exception()
        if crashed is None or self.crashed is not None:
            return
        self._crash.error = crashed
        log.critical("the plane's task %s failed: %r", task.get_name(), crashed, exc_info=crashed)
        if self._crash.listener is not None:
            self._crash.listener(crashed)

    @property
    def crashed(self) -> BaseException | None:
        """What ended a task of the plane by itself, if one did (none of its own)."""
        return self._crash.error

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, put_away: bool = True, timeout: float | None = None) -> None:
        """Finish queued work, stop every agent (into the store when ``put_away``: a
        durable store's final checkpoint captures agents left in memory), end the
        plane's tasks. Work not finished within ``timeout`` seconds is left unhandled
        (:attr:`dropped` says how much)."""
        if self._closed:
            return
        left = 0
        if self._tasks and not self._tasks[0].done():
            try:
                async with asyncio.timeout(timeout):
                    await self.settle()
            except TimeoutError:
                left = max(1, self.queued())  # (at least the one running)
        if self.crashed is not None:
            left = max(1, self.queued())  # (whatever it left, nothing may cut past it)
        self.dropped = left
        self._closed = True
        self._stop_all(put_away)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._scheduler.close()
        self.failures.report_held(everything=True)  # (a burst must not end as one line)

    @property
    def running(self) -> bool:
        """True while the scheduler task runs (false before start, after close or a crash)."""
        return bool(self._tasks) and not self._tasks[0].done() and not self._closed

    def queued(self) -> int:
        """Messages waiting in agent mailboxes (only agents with work are looked at)."""
        return self._scheduler.queued()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError("the plane is closed")

    # -- addressing ----------------------------------------------------------------------

    def _resolve(self, node_uri: str) -> tuple[RoutePattern, type[Agent], str]:
        found = self._routes.resolve(node_uri)
        return found.pattern, found.target, found.uri

    def lane_kind(self, node_uri: str, lane: str) -> str:
        """The kind of ``lane`` on the agent at ``node_uri`` (without creating it)."""
        cell = self._cells.get(node_uri)
        cls = type(cell.agent) if cell is not None else self._resolve(node_uri)[1]
        declared = cls.__swim_lanes__.get(lane)
        if declared is None:
            raise _lane_not_found(node_uri, cls, lane)
        return declared.kind

    def _cell(self, node_uri: str, lane: str | None = None) -> AgentCell:
        cell = self._cells.get(node_uri)
        return cell if cell is not None else self._activate(node_uri, lane)

    def _activate(
        self, node_uri: str, lane: str | None = None, stored: StoredAgent | None = None
    ) -> AgentCell:
        """The agent's cell, made (or loaded back) now; ``stored`` is its record when the
        caller has read it already (one read, not two)."""
        self._check_open()
        route, cls, canonical = self._resolve(node_uri)
        if lane is not None and lane not in cls.__swim_lanes__:  # a typo in a command or
            raise _lane_not_found(node_uri, cls, lane)  # a read makes no agent, no on_start
        cell = self._cells.get(canonical)
        if cell is not None:
            return cell
        unrestorable = self._unrestorable.get(canonical)
        if unrestorable is not None:
            # Logged once, at the first try (the code must change); a fresh exception
            # each time, so tracebacks do not pile up on one object.
            raise AgentRestoreError(str(unrestorable))
        cell = AgentCell(self, canonical, route, cls.__swim_unbound__)
        agent = cls()
        agent._attach(canonical, cell)
        cell.agent = agent
        cell.last_used = self.clock.time()
        self._cells[canonical] = cell
        if len(self._cells) > self._limits.overflow:
            self._passivate_soon()
        restoring, self._restoring = self._restoring, True  # (a link's target may nest)
        try:
            stored = self._load(canonical) if stored is None else stored
            if stored is not None:
                restore_agent(agent, stored)
        except AgentRestoreError as exc:  # its own state does not fit its class
            del self._cells[canonical]  # its stored state stays as it is
            self._unrestorable[canonical] = exc
            log.error("%s", exc, extra={"node": canonical})
            raise
        except Exception as exc:
            # Not in memory half-loaded: its next use would find it so (without the
            # rest of its links, which its next passivation would then drop for good).
            del self._cells[canonical]
            if isinstance(exc, StoreError):
                raise  # not the agent's fault: the plane crashed (see _load)
            raise AgentRestoreError(f"agent {canonical} cannot be loaded: {exc!r}") from exc
        finally:
            self._restoring = restoring
        cell.post(handle_start)
        self._activations += 1
        if self._on_activate is not None:
            self._on_activate(canonical)
        return cell

    def agent(self, node_uri: str) -> Agent:
        """The agent at ``node_uri``, created (or reloaded) if need be."""
        return self._cell(node_uri).agent

    def lane(self, node_uri: str, lane: str) -> Lane:
        """The bound lane ``lane`` of the agent at ``node_uri``."""
        agent = self._cell(node_uri, lane).agent
        if lane not in type(agent).__swim_lanes__:
            raise _lane_not_found(node_uri, type(agent), lane)
        return agent.lane(lane)

    def get(self, node_uri: str, lane: str) -> Any:
        """The current state of a lane as a JSON value."""
        return self.lane(node_uri, lane).to_json()

    @property
    def active_agents(self) -> int:
        """How many agents are in memory."""
        return len(self._cells)

    def active_node_uris(self) -> list[str]:
        """Node URIs of the agents in memory, least recently used first."""
        return list(self._cells)

    def describe_routes(self) -> list[tuple[str, str, dict[str, str]]]:
        """``(route pattern, agent class name, {lane: kind})`` for every route."""
        return [
            (pattern.text, cls.__name__, {n: lane.kind for n, lane in cls.__swim_lanes__.items()})
            for pattern, cls in self._routes
        ]

    def is_active(self, node_uri: str) -> bool:
        """Whether the agent at ``node_uri`` is in memory (not passivated)."""
        return node_uri in self._cells

    # -- commands ------------------------------------------------------------------------

    def submit(
        self,
        node_uri: str,
        lane: str,
        value: Any = None,
        ack: Callable[[BaseException | None], None] | None = None,
        now: bool = False,
    ) -> bool:
        """Queue a command without waiting; False when the target's mailbox is full.

        The command is queued either way: False asks the caller (a source) to pause
        until :meth:`wait_for_room`. ``ack`` is called after the command's callback
        finished, with the exception if it raised. ``now``, from outside any turn (a
        source): an idle agent runs it at once (``Scheduler.run_now``).
        """
        cell = self._cells.get(node_uri) or self._activate(node_uri, lane)
        if lane not in cell.unbound:  # (every lane's name: see ``AgentCell.unbound``)
            raise _lane_not_found(node_uri, type(cell.agent), lane)
        if now and self._scheduler.run_now(cell.node_uri, lane, value, ack):
            return True  # (counted there)
        self._commands += 1
        cell.post(handle_command, lane, value, ack)
        mailbox = cell.mailbox
        return mailbox is None or len(mailbox) < self.mailbox_capacity

    def take_overfull(self) -> str | None:
        """The node whose mailbox a command caused by a record filled since the last
        call, if any: the sources wait for room there as for a record's own target."""
        node_uri, self._scheduler.overfull = self._scheduler.overfull, None
        return node_uri

    async def command(self, node_uri: str, lane: str, value: Any = None) -> None:
        """Queue a command, waiting while the target's mailbox is full."""
        if not self.submit(node_uri, lane, value):
            await self.wait_for_room(node_uri)

    async def wait_for_room(self, node_uri: str) -> None:
        """Return once the agent's mailbox is below half its capacity."""
        cell = self._cells.get(node_uri)
        if cell is None:  # (another spelling, as user code writes it: ``/tower/north 1``)
            found = self._routes.lookup(node_uri)
            cell = self._cells.get(found.uri) if found is not None else None
        while cell is not None and cell.mailbox and len(cell.mailbox) >= self.mailbox_capacity // 2:
            waiter = asyncio.get_running_loop().create_future()
            if cell.room_waiters is None:
                cell.room_waiters = []
            cell.room_waiters.append(waiter)
            await waiter

    async def call(self, node_uri: str, fn: Callable[[Agent], Any]) -> Any:
        """Run ``fn(agent)`` in the agent's turn and return its result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def run(agent: Agent) -> None:
            if not future.done():
                future.set_result(fn(agent))

        def ack(error: BaseException | None) -> None:
            if error is not None and not future.done():
                future.set_exception(error)

        self._cell(node_uri).post(handle_call, run, None, ack)
        return await future

    async def settle(self) -> None:
        """Wait until every queued message, and everything it caused, has been handled."""
        await self._scheduler.settle()

    async def wait_for_work(self) -> None:
        """Return once an agent has work after the plane was idle (at once if busy)."""
        await self._scheduler.wait_for_work()

    # -- links ---------------------------------------------------------------------------

    def link(self, node_uri: str, lane: str, uplink: Uplink) -> None:
        """Link an outside subscriber (WARP, HTTP stream, mesh peer) to a lane.

        The lane's state arrives through ``uplink.offer_snapshot`` in the agent's next
        turn, then every change through ``uplink.offer``.
        """
        self.lane_kind(node_uri, lane)
        self._cell(node_uri).post(handle_link, lane, uplink)

    def unlink(self, node_uri: str, lane: str, uplink: Uplink) -> None:
        """Stop sending ``lane``'s changes to ``uplink``."""
        uplinks = self.links.remove(node_uri, lane, uplink)
        cell = self._cells.get(node_uri)
        bound = None if cell is None else cell.agent._namespace.get(lane)
        if bound is not None:
            bound._attach_uplinks(uplinks)

    def _open_downlink(self, cell: AgentCell, downlink: Downlink) -> None:
        if self._state is not None and not self._restoring:
            self._state.links_changed(cell.node_uri)
        if self.links.end(cell.node_uri, downlink.id) is not None:
            return  # still open from before the subscriber was passivated (or a restart)
        target_lane = (downlink.node_uri, downlink.lane, downlink.lane_kind)
        end = LinkEnd(cell.node_uri, downlink.id, *target_lane, self)
        # A stored link reopened with no end left (its agent was forgotten): its replica
        # may hold what the target's state no longer has, as at restore_links.
        end.resync_at = self.hlc.now() if self._restoring else 0
        self.links.add_end(end)
        try:
            target = self._cell(downlink.node_uri)
        except AgentRestoreError:
            if not self._restoring:
                raise
            # Reopening a stored link of an agent being loaded, to a target that cannot
            # load (logged once, with why): the agent loads all the same, and the link
            # waits, registered, for a start whose code can load its target.
            return
        target.post(handle_link, downlink.lane, end)

    def _close_downlink(self, cell: AgentCell, downlink: Downlink) -> None:
        cell.agent._forget_link(downlink)
        if self._state is not None:
            self._state.links_changed(cell.node_uri)
        end = self.links.pop_end(cell.node_uri, downlink.id)
        if end is not None:
            end.closed = True
            self.unlink(end.node_uri, end.lane, end)

    def _deliver(self, end: LinkEnd, op: Op | None) -> None:
        """Queue a delivery of what ``end`` holds, and ``op``, loading the subscriber if
        need be (an idle one takes a change at once: ``LinkEnd.offer``)."""
        if op is not None:
            end.pending.add(op)
        end.held = False
        cell = self._cells.get(end.subscriber)
        if cell is None:
            try:
                cell = self._activate(end.subscriber)
            except AgentRestoreError:
                end.scheduled, end.held = False, True  # it cannot load: the change waits
                return
            except RoutingError as exc:  # its route is gone (a deploy): so is the link,
                self._drop_link(end, exc)  # not the change being made (raising here
                return  # left the owner's write half done: unstored, no on_set)
        if not self._scheduler.deliver_now(cell, end):
            cell.post(handle_delivery, end)

    def _drop_link(self, end: LinkEnd, why: RoutingError) -> None:
        log.warning(
            "the link of %s to %s#%s is dropped: %s", end.subscriber, end.node_uri, end.lane, why
        )
        end.closed = True  # (unlinked after the owner's turn, which iterates its links)
        self.links.pop_end(end.subscriber, end.downlink_id)
        asyncio.get_running_loop().call_soon(self.unlink, end.node_uri, end.lane, end)

    def _write_through(self, node_uri: str, lane: str, op: Op) -> None:
        self._cell(node_uri).post(handle_remote_op, lane, op)

    # -- observers and sinks -------------------------------------------------------------

    def observe(
        self,
        observer: LaneObserver,
        *,
        route: str | None = None,
        lane: str | None = None,
        stateful_only: bool = False,
    ) -> None:
        """Call ``observer(lane, op)`` for every change of matching lanes.

        ``route`` is a route pattern as registered (``/device/:id``), ``lane`` a lane
        name; None matches all. ``stateful_only`` leaves out lanes without state
        (commands, demand lanes). Observers run after links, in registration order.
        """
        if route is not None and self._routes.get(route) is None:
            raise NodeNotFoundError(f"no agent route {route!r} to observe")
        self._observers.append((route, lane, stateful_only, observer))
        self._observer_tables.clear()
        for cell in self._cells.values():
            table = self._observer_table(cell.route)
            for bound in cell.agent.bound_lanes():
                bound._attach_observers(table.get(bound.name, ()), self._state)

    def _observer_table(self, route: RoutePattern) -> dict[str, tuple[LaneObserver, ...]]:
        """Lane name -> observers, for agents of one route (computed once per route)."""
        table = self._observer_tables.get(route.text)
        if table is None:
            cls = self._routes.get(route)
            lanes = cls.__swim_lanes__ if cls is not None else {}
            table = {}
            for lane, declared in lanes.items():
                observers = tuple(
                    observer
                    for want_route, want_lane, stateful_only, observer in self._observers
                    if want_route in (None, route.text)
                    and want_lane in (None, lane)
                    and (declared.stateful or not stateful_only)
                )
                if observers:
                    table[lane] = observers
            self._observer_tables[route.text] = table
        return table

    def _publish(self, cell: AgentCell, topic: str, value: Any, key: str | None) -> None:
        if key is None:
            params = cell.params
            key = list(params.values())[-1] if params else cell.node_uri
        insight = Insight(topic, key, value, cell.node_uri)
        if self._publisher is not None:
            self._publisher(insight)
        else:
            self.insights.append(insight)

    # -- durable state -------------------------------------------------------------------

    def track_state(self, observer: StateObserver) -> None:
        """Tell ``observer`` of every state change (lanes, links, timers, passivation)."""
        self._state = observer
        self.observe(observer.lane_changed, stateful_only=True)

    def _timers_changed(self, node_uri: str) -> None:
        if self._state is not None and not self._restoring:
            self._state.timers_changed(node_uri)

    def _links_delivered(self, node_uri: str) -> None:
        """A plain downlink's replica changed: its stored form is out of date."""
        if self._state is not None:
            self._state.links_changed(node_uri)

    def links_of(self, node_uri: str) -> bytes | None:
        """The encoded links of an active agent (None when it never opened one or is not
        active: a passivated agent's links are in its stored form)."""
        cell = self._cells.get(node_uri)
        return None if cell is None else dump_links(cell.agent)

    def timers_of(self, node_uri: str) -> bytes | None:
        """The encoded pending timers of an agent (None when it has none)."""
        return dump_timers(
            [
                TimerSpec(t.id, t.method, t.args, t.due, t.period)
                for t in self.timers.for_node(node_uri)
            ]
        )

    def restore_timers(self, node_uri: str, timers: list[TimerSpec]) -> None:
        """Re-arm stored timers at start; ones due during the downtime fire at once."""
        self._restoring = True
        try:
            for t in timers:
                self.timers.schedule(node_uri, t.method, t.args, t.due, t.period, timer_id=t.id)
        finally:
            self._restoring = False
        self._timer_wakeup.set()

    def restore_links(self, node_uri: str, links: list[LinkSpec]) -> None:
        """Register an agent's stored links without loading it: changes of the targets
        reach it (waking it), and each target syncs its link now or as it loads."""
        now = self.hlc.now()
        for spec in links:
            if self.links.end(node_uri, spec.id) is not None:
                continue
            try:  # (by its one spelling: links stored before it was canonical, too)
                target_uri = self._resolve(spec.node_uri)[2]
                kind = self.lane_kind(target_uri, spec.lane)
            except RoutingError as exc:  # a deploy removed the lane or route, as loading
                log.warning("agent %s: a stored link is dropped: %s", node_uri, exc)
                continue  # the agent does (restore_agent): the instance still starts
            end = LinkEnd(node_uri, spec.id, target_uri, spec.lane, kind, self)
            end.resync_at = now
            self.links.add_end(end)
            self.links.add(target_uri, spec.lane, end)
            target = self._cells.get(target_uri)
            if target is not None:
                target.post(handle_link, spec.lane, end)

    # -- failures and statistics ---------------------------------------------------------

    def _report_failure(
        self, cell: AgentCell, lane: str, callback: str, exc: BaseException
    ) -> None:
        self.failures.record(cell.node_uri, cell.route.text, lane, callback, exc)

    def statistics(self) -> PlaneStatistics:
        """The plane's counters, as an immutable snapshot."""
        return PlaneStatistics(
            active_agents=len(self._cells),
            stored_agents=len(self.store),
            messages_handled=self._scheduler.processed + self._scheduler.commands,
            commands=self._commands + self._scheduler.commands,
            callback_failures=self.failures.count,
            links=len(self.links),
            timers=len(self.timers),
            activations=self._activations,
            passivations=self._passivations,
        )


def _lane_not_found(node_uri: str, cls: type[Agent], lane: str) -> LaneNotFoundError:
    return LaneNotFoundError(f"agent {node_uri} ({cls.__name__}) has no lane {lane!r}")
