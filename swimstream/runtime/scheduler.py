"""The run loop: every agent one thing at a time, all agents fairly.

Cells with work wait in one ready queue. The loop takes a cell, runs up to
:data:`TURN_BATCH` of its messages (batching amortises the bookkeeping of a turn over
a burst of events for one hot agent), and puts it back at the end of the queue if more
arrived, so one busy agent cannot starve the others. After :data:`LOOP_BUDGET`
messages the loop yields to the event loop so sources, links and the web keep
breathing.

Callbacks are plain functions on the fast path. A callback that returns a coroutine
(an ``async def`` command or timer handler) makes its agent *busy*: the coroutine runs
as a task owned by this scheduler, the agent's other messages wait, and every other
agent carries on. All such tasks are cancelled when the scheduler closes: nothing
outlives the plane.

A callback that raises ends that message only: the failure is logged with the agent
and lane, counted, and passed to the message's ack (so a source can dead-letter the
record); the agent keeps running.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from swimstream.errors import LANE_COMMAND, LIFECYCLE, TIMER, CallbackError, SwimstreamError
from swimstream.runtime.cell import handle_command, handle_delivery
from swimstream.runtime.origin import ORIGIN, TURN

if TYPE_CHECKING:
    from swimstream.crdt import HybridLogicalClock, Op
    from swimstream.runtime.cell import AgentCell, Handler
    from swimstream.runtime.links import LinkEnd
    from swimstream.runtime.origin import Ack

log = logging.getLogger("swimstream.agent")

TURN_BATCH = 64
"""Messages one agent handles per turn before others get a go."""

LOOP_BUDGET = 4096
"""Messages handled between yields to the event loop."""

RECENCY_STEP = 1.0
"""Seconds the time turns note as their agents' last use (``Scheduler.now``) stays put:
a reading of the clock less than this after the noted one leaves it as it is, so an
agent used many times a second moves in the least recently used order once a second,
not once a batch. Those moves were some 800 machine instructions of a turn: with none
at all, the peers' work took 19,764 to 18,892 a record and the towers 54,398 to 53,581
(callgrind; at its pace, a fiftieth of the service's, every device's turn still moves,
but at 100,000 records a second each of 10,000 devices is used ten times a step).
Idle timeouts are minutes; a pass may take an agent up to this much early."""

NOW_DEPTH = 4
"""How deep messages run at once inside other messages (a link's delivery inside the
turn that changed the lane, and so on) before they queue instead: bounds the stack."""

UNTRACED: Any = object()
"""The origin of a delivery run at once: not the record of the turn it runs inside
(links carry state, not events), and not an ack to fork."""


def _describe(cell: AgentCell, handler: Handler, a: Any) -> tuple[str, str]:
    """(lane, callback) to name in a failure report for a mailbox item.

    A failed command ran ``on_command`` only on a command lane; value, map and counter
    lanes apply commands themselves (their own callbacks, such as ``on_update``, report
    under their names by raising :class:`CallbackError`).
    """
    name = getattr(handler, "__name__", "handler")
    if name == "handle_command":
        declared = type(cell.agent).__swim_lanes__.get(a)
        kind = declared.kind if declared is not None else None
        return str(a), "on_command" if kind == "command" else LANE_COMMAND
    if name == "handle_timer":
        return TIMER, str(a.method)
    if name == "handle_start":
        return LIFECYCLE, "on_start"
    return name.removeprefix("handle_"), name


class Scheduler:
    """Runs mailboxes; owned by a plane, driven by :meth:`run`."""

    def __init__(
        self,
        on_failure: Callable[[AgentCell, str, str, BaseException], None],
        cells: dict[str, AgentCell],
        clock: Callable[[], float] | None = None,
        hlc: HybridLogicalClock | None = None,
    ) -> None:
        """``cells``, the plane's agents in memory by node URI (:meth:`run_now` finds
        its agent there); ``clock``, when the plane passivates, the clock of their
        recency, which keeps them in least recently used order: after each turn the cell
        notes :attr:`now` and, unless it noted that time already, moves to the recent
        end; done here, inline, because a call and a clock read per turn were a tenth of
        a record's cost. ``hlc``, the plane's ticked clock (see
        ``swimstream.crdt.clock``), ticked with each reading of :attr:`now`, whether or
        not the plane passivates."""
        self._ready: deque[AgentCell] = deque()
        self._wakeup = asyncio.Event()
        self._sleeping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[AgentCell] = set()  # agents in an async callback
        self._closed = False
        self._settle_waiters: list[asyncio.Future[None]] = []
        self._work_waiters: list[asyncio.Future[None]] = []
        self._on_failure = on_failure
        self._cells = cells
        self._clock = clock
        self._hlc = hlc
        self._depth = 0  # messages run at once, one inside the other (``run_now``)
        self.now = 0.0
        """The time a turn notes as its agent's last use (``AgentCell.last_used``), when
        the plane passivates: the clock read at the start of each :meth:`drain`, of each
        batch a source routes (:meth:`note_time`, through ``Plane.note_time``), and of
        each passivation pass, rather than at each turn, and taken only once it is
        :data:`RECENCY_STEP` past the time noted. So recency is as coarse as that: agents
        used within one step are equally recent, in the order of their first turn in
        it, and a turn outside those (a change delivered from outside any turn) notes a
        time at most one housekeeping interval and one step old (see
        ``Passivation._housekeep``). Passivation's idle timeouts are seconds; a read of
        the clock and a move in the order at every turn were some 1,400 machine
        instructions of a towers reading (two turns: 61,224 to 59,738)."""
        self.processed = 0
        self.commands = 0
        """Commands run at once (:meth:`run_now`); the plane counts those it queues. Each
        is a message handled too, which :attr:`processed` leaves out: the plane adds
        them (one count a record rather than two)."""
        self.overfull: str | None = None
        """A node whose mailbox a command caused by a record filled (``AgentCell.command``),
        until the sources ask (``Plane.take_overfull``)."""

    # -- feeding -------------------------------------------------------------------------

    def ready(self, cell: AgentCell) -> None:
        """``cell`` has work; it was not queued before (the cell checks).

        ``AgentCell.post`` inlines this on the hot path.
        """
        self._ready.append(cell)
        if self._sleeping:
            self.wake()

    def wake(self) -> None:
        """Rouse the loop from its idle wait (and whoever waits for work)."""
        self._sleeping = False
        self._wakeup.set()
        if self._work_waiters:
            _resolve_all(self._work_waiters)
            self._work_waiters = []

    def queued(self) -> int:
        """Messages in the mailboxes of agents waiting for a turn, or busy in an async
        callback (the backlog behind I/O is the one most worth seeing)."""
        waiting = (*self._ready, *self._busy)
        return sum(len(cell.mailbox) for cell in waiting if cell.mailbox)

    @property
    def quiet(self) -> bool:
        """No agent has work queued or running."""
        return not self._ready and not self._tasks

    async def settle(self) -> None:
        """Wait until every queued message (and what it caused) has been handled."""
        while not self.quiet and not self._closed:  # (closed: what is left stays left)
            waiter = asyncio.get_running_loop().create_future()
            self._settle_waiters.append(waiter)
            if self._sleeping:
                self._wakeup.set()
            await waiter

    async def wait_for_work(self) -> None:
        """Return once an agent has work after the loop was idle (at once unless it
        is idle now). Costs nothing per message: only the idle loop's wake-up looks.

        Periodic housekeeping (checkpoints) waits here instead of polling an idle plane.
        """
        if not self._sleeping:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._work_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._work_waiters:  # cancelled: leave no dead future behind
                self._work_waiters.remove(waiter)

    def note_time(self) -> None:
        """Read the clock into :attr:`now` (if the plane passivates), and tick the
        plane's hybrid logical clock: the writes of the turns that follow stamp their
        ops as of this time, logically after every stamp before."""
        if self._clock is not None:
            now = self._clock()
            if not 0.0 <= now - self.now < RECENCY_STEP:  # (a clock set back: at once)
                self.now = now
        if self._hlc is not None:
            self._hlc.tick()

    def run_now(self, node_uri: str, lane: str, value: Any, ack: Ack) -> bool:
        """Run a command to an idle agent at once (``handle_command``, inline), as a
        turn of its own; False (and nothing done) when the agent is not in memory, has
        no such lane, has work queued or running, or the stack is too deep: the caller
        then submits it (``Plane.submit``, which loads the agent, or names the lane
        missing, and queues the command).

        A source calls this first for each record (``Plane.run_now``): through
        ``Plane.submit`` it was one more call a record, some 620 machine instructions
        (framework 13,884 to 13,259, towers 57,439 to 56,824).

        An idle agent's message would be the first of its next turn anyway, so running
        it now keeps every agent's order: what it causes is queued or, for idle
        agents, run the same way. It saves the mailbox, the ready queue and the loop's
        bookkeeping, which were a fifth of a record's cost. ``cell.scheduled`` stays set
        meanwhile, so nothing re-enters the agent: a message for it queues. (The
        command's handler inline: its call was some 400 machine instructions of every
        record, 14,570 to 14,085 for the framework alone, 64,018 to 63,550 for towers.)
        """
        # (Subscripts in ``try``, not ``get`` and ``in``: a method call and a second
        # look-up a record were some 370 machine instructions, 13,105 to 12,730 for the
        # framework alone; an agent not in memory, or no such lane, pays the KeyError.)
        try:
            cell = self._cells[node_uri]
        except KeyError:
            return False
        depth = self._depth
        if cell.scheduled or depth >= NOW_DEPTH:
            return False
        try:
            unbound = cell.unbound[lane]
        except KeyError:
            return False
        cell.scheduled = True
        self._depth = depth + 1
        self.commands += 1
        turn = TURN
        outer = turn.origin
        turn.origin = UNTRACED if ack is None else ack
        try:
            agent = cell.agent  # (``handle_command``, inline: change both together)
            lanes = agent._namespace
            result = lanes[lane]._command(value) if lane in lanes else unbound(agent, value)
        except BaseException as exc:  # (see _failed: any exception is the callback's)
            self._failed(cell, handle_command, lane, exc, ack)
        else:
            if result is not None and asyncio.iscoroutine(result):
                self._start_async(cell, result, handle_command, lane, ack)  # (ends unscheduled)
            elif ack is not None:
                ack.__call__(None)  # (see ``drain``)
        finally:
            turn.origin = outer
            self._depth = depth  # (what the turns run inside this one left it at too)
        if self._clock is not None and cell.last_used != self.now:  # (see ``now``)
            lru = self._cells
            cell.last_used = self.now
            try:  # noqa: SIM105 (``contextlib.suppress``: a call and a context manager)
                lru[node_uri] = lru.pop(node_uri)  # (see ``now``: to the recent end)
            except KeyError:
                pass  # passivated in its turn
        if cell.busy:
            return True
        if cell.mailbox:
            self._ready.append(cell)
        else:
            cell.scheduled = False
        if self._sleeping:
            self.wake()  # (whoever waits for work: checkpoints)
        return True

    def deliver_now(self, cell: AgentCell, end: LinkEnd) -> bool:
        """:meth:`run_now` for what a link's buffer holds (``handle_delivery``), as
        ``Plane._deliver`` queues it; a single change an idle subscriber takes at once
        takes :func:`offer_change`'s copy of this, inline (change both together)."""
        depth = self._depth
        if cell.scheduled or depth >= NOW_DEPTH:
            return False
        cell.scheduled = True
        self._depth = depth + 1
        turn = TURN
        outer = turn.origin
        turn.origin = UNTRACED
        try:
            handle_delivery(cell, end, None)
        except BaseException as exc:  # (as in run_now)
            self._failed(cell, handle_delivery, end, exc, None)
        finally:
            turn.origin = outer
            self._depth = depth
        self._turn_ended(cell)
        return True

    def _turn_ended(self, cell: AgentCell) -> None:
        """The end of a turn run at once, but for :func:`offer_change`'s (inline)."""
        self.processed += 1
        if self._clock is not None and cell.last_used != self.now:  # (see ``now``)
            lru = self._cells
            cell.last_used = self.now
            node_uri = cell.node_uri
            try:  # noqa: SIM105 (``contextlib.suppress``: a call and a context manager)
                lru[node_uri] = lru.pop(node_uri)  # (see ``now``: to the recent end)
            except KeyError:
                pass  # passivated in its turn
        if cell.mailbox:
            self._ready.append(cell)
        else:
            cell.scheduled = False
        if self._sleeping:
            self.wake()

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Handle messages until cancelled."""
        try:
            while True:
                if not self._ready:
                    self._notify_settled()
                    self._sleeping = True
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                self.drain(LOOP_BUDGET)
                await asyncio.sleep(0)
        finally:
            await self.close()

    def drain(self, budget: int) -> int:
        """Handle up to about ``budget`` messages; returns how many were handled."""
        ready = self._ready
        clock = self._clock
        lru = None if clock is None else self._cells
        now = 0.0 if clock is None else clock()
        if not 0.0 <= now - self.now < RECENCY_STEP:  # (as in ``note_time``)
            self.now = now
        else:
            now = self.now
        if self._hlc is not None:
            self._hlc.tick()  # (see ``note_time``)
        turn = TURN
        origin: Ack = None
        handled = 0
        while ready and handled < budget:
            cell = ready.popleft()
            batch = cell.mailbox
            if batch is None:  # emptied by an async callback that just finished
                cell.scheduled = False
                continue
            if len(batch) <= TURN_BATCH:
                cell.mailbox = None  # posts during the turn start a new list
            else:
                cell.mailbox, batch = batch[TURN_BATCH:], batch[:TURN_BATCH]
            handled += len(batch)
            items = iter(batch)
            for handler, a, b, ack in items:
                if ack is not origin:  # what the callback causes descends from this ack
                    turn.origin = origin = ack
                try:
                    result = handler(cell, a, b)
                except BaseException as exc:
                    self._failed(cell, handler, a, exc, ack)
                    continue
                if result is not None and asyncio.iscoroutine(result):
                    self._start_async(cell, result, handler, a, ack)
                    rest = list(items)
                    if rest:  # what the agent has not reached waits in front of newer posts
                        cell.mailbox = rest + (cell.mailbox or [])
                        handled -= len(rest)
                    break
                if ack is not None:
                    # Called through ``__call__``: a record's ack is an object, and calling
                    # one runs its method through C, about 650 machine instructions more.
                    ack.__call__(None)
            if lru is not None and cell.last_used != now:
                cell.last_used = now
                node_uri = cell.node_uri
                try:  # noqa: SIM105 (``contextlib.suppress``: a call and a context manager)
                    lru[node_uri] = lru.pop(node_uri)  # (see ``now``: to the recent end)
                except KeyError:
                    pass  # passivated in its turn
            if cell.room_waiters is not None:
                _release_room(cell)
            if cell.busy:
                continue
            if cell.mailbox:
                ready.append(cell)
            else:
                cell.scheduled = False
        turn.origin = None
        self.processed += handled
        return handled

    def _failed(
        self, cell: AgentCell, handler: Handler, a: Any, exc: BaseException, ack: Ack
    ) -> None:
        """A callback raised: its message failed (its record goes to the dead letters).

        Whatever it raised, ``SystemExit``, ``KeyboardInterrupt`` and ``CancelledError``
        included: a callback runs inside the scheduler's loop (or a source's), and any of
        those ending that loop stopped every agent's turns while sources read on and
        checkpoints committed past records no agent handled. (The service stops on its
        signals, never through an exception raised in a callback.) Reporting it must not
        fail either: an exception whose ``str()`` raises is reported all the same.
        """
        if isinstance(exc, CallbackError):
            lane, callback = exc.lane, exc.callback
            cause = exc.__cause__ or exc
        else:
            lane, callback = _describe(cell, handler, a)
            cause = exc
            if not isinstance(exc, SwimstreamError):
                exc = CallbackError(cell.node_uri, lane, callback)
                exc.__cause__ = cause
        try:
            self._on_failure(cell, lane, callback, cause)
        except Exception:  # (a report that fails must not end the loop)
            log.exception(
                "reporting the failure of %s on %s failed",
                callback,
                cell.node_uri,
                extra={"node": cell.node_uri, "lane": lane, "callback": callback},
            )
        if ack is not None:
            ack(exc)

    def _start_async(
        self,
        cell: AgentCell,
        coroutine: Coroutine[Any, Any, Any],
        handler: Handler,
        a: Any,
        ack: Ack,
    ) -> None:
        cell.busy = True
        self._busy.add(cell)
        context = contextvars.copy_context()
        context.run(ORIGIN.set, ack)  # its origin, for the whole task, across awaits
        task = asyncio.get_running_loop().create_task(
            self._await(cell, coroutine, handler, a, ack), context=context
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await(
        self,
        cell: AgentCell,
        coroutine: Coroutine[Any, Any, Any],
        handler: Handler,
        a: Any,
        ack: Ack,
    ) -> None:
        try:
            await coroutine
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if self._closed or (task is not None and task.cancelling()):
                raise  # this task is cancelled (the plane closes): its record is replayed
            self._failed(cell, handler, a, exc, ack)  # the callback's own (an inner task's)
        except BaseException as exc:
            self._failed(cell, handler, a, exc, ack)
        else:
            if ack is not None:
                ack(None)
        finally:
            # Leave the task set now: the done-callback runs too late for the quiet check.
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            cell.busy = False
            self._busy.discard(cell)
            if cell.mailbox:
                self.ready(cell)
            else:
                cell.scheduled = False
            if self.quiet:
                self._notify_settled()

    def _notify_settled(self) -> None:
        if self._settle_waiters and self.quiet:
            waiters, self._settle_waiters = self._settle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def close(self) -> None:
        """Cancel running async callbacks and wait for them to end."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        _resolve_all(self._settle_waiters)
        self._settle_waiters = []
        _resolve_all(self._work_waiters)
        self._work_waiters = []


def offer_change(end: LinkEnd, op: Op) -> None:
    """``LinkEnd.offer`` (that class's method): a change of the lane ``end`` links.

    An idle subscriber takes it at once, as a turn of its own (``handle_delivery``'s
    case of one op, inline: change both together), inside the turn that made it;
    otherwise it waits in the link's buffer for a delivery queued in the subscriber's
    mailbox, or for the subscriber to load (``Plane._deliver``). Here rather than in
    :mod:`.links` because it is mostly that turn, whose bookkeeping is this module's.
    Without what a delivery never has: an ack to call, an ``async`` callback to start
    (so the subscriber is not busy after it). Every change a link carries to an idle
    subscriber comes this way: the generic turn's checks, then the call of
    ``Scheduler.deliver_now`` from here, were some 1,350 machine instructions of a
    towers reading (64,939 to 63,992, then 56,292 to 55,882).
    """
    if end.closed:
        return
    if end.scheduled:
        end.pending.add(op)  # the queued delivery takes it, coalesced
        return
    plane = end._plane
    scheduler = plane._scheduler
    try:  # (a subscript, not ``get``: as in ``Scheduler.run_now``)
        cell = scheduler._cells[end.subscriber]
    except KeyError:
        cell = None
    if cell is None or end.held:
        end.scheduled = True
        plane._deliver(end, op)
        return
    depth = scheduler._depth
    if cell.scheduled or depth >= NOW_DEPTH:
        end.scheduled = True
        end.pending.add(op)  # the subscriber is busy: it takes it in its next turn
        cell.post(handle_delivery, end)
        return
    # (Taken at once: no delivery queued, so ``end.scheduled`` is never set, where
    # setting it here and unsetting it in the delivery were some 160 instructions.)
    cell.scheduled = True
    scheduler._depth = depth + 1
    turn = TURN
    outer = turn.origin
    turn.origin = UNTRACED
    try:
        try:
            downlink = cell.agent._downlinks[end.downlink_id]  # type: ignore[index]
        except (KeyError, TypeError):  # (None: it has no links open now)
            downlink = None
        if downlink is not None and not downlink._closed:
            if end.replace_before:  # (a resync: see ``swimstream.runtime.links``)
                downlink._replace_before(end.replace_before)
                end.replace_before = 0
            downlink._receive_op(op)
            if downlink.stores_replica:
                plane._links_delivered(cell.node_uri)
    except BaseException as exc:  # (as in run_now)
        scheduler._failed(cell, handle_delivery, end, exc, None)
    finally:
        turn.origin = outer
        scheduler._depth = depth
    scheduler.processed += 1  # (``Scheduler._turn_ended``, inline)
    if scheduler._clock is not None and cell.last_used != scheduler.now:  # (see ``now``)
        lru = scheduler._cells
        cell.last_used = scheduler.now
        node_uri = cell.node_uri
        try:  # noqa: SIM105 (``contextlib.suppress``: a call and a context manager)
            lru[node_uri] = lru.pop(node_uri)  # (see ``now``: to the recent end)
        except KeyError:
            pass  # passivated in its turn
    if cell.mailbox:
        scheduler._ready.append(cell)
    else:
        cell.scheduled = False
    if scheduler._sleeping:
        scheduler.wake()


def _resolve_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


ROOM_FRACTION = 2
"""Waiters for room in a full mailbox resume when it drains below capacity / this."""


def _release_room(cell: AgentCell) -> None:
    mailbox = cell.mailbox
    capacity = cell.plane.mailbox_capacity
    if mailbox is not None and len(mailbox) >= capacity // ROOM_FRACTION:
        return
    waiters, cell.room_waiters = cell.room_waiters or [], None
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
