"""Server-Sent Events: a lane's state and then its every change, for curl and browsers.

``GET /<node>?lane=<lane>`` with ``Accept: text/event-stream`` (or ``&stream=1``) links
the HTTP response to the lane like any other subscriber. One stream goes through:

``refused``
    With ``max_streams`` streams open, a new one is answered 503 with ``Retry-After``
    before anything is linked: each open stream holds a buffer and costs the agent it
    watches a delivery per change. A stream's slot is free again once it unlinked.
``link``
    :meth:`Plane.link` registers a :class:`LaneUplink` on the lane. Right behind the
    link, in the same agent turn, :meth:`Plane.call` reads the lane's whole state and
    empties the uplink's buffer (the link's own sync holds that same moment), so the
    stream neither misses a change nor repeats one.
``synced``
    The response starts: ``event: state`` with the lane's JSON state (exactly what a
    plain GET answers), then ``event: synced`` with ``{"node", "lane", "kind"}``.
``events``
    Every change after that. Changes pile up in the uplink's buffer, coalesced the way
    local links coalesce (:func:`~swimstream.runtime.coalesce.pending_for`: the newest
    value, the newest op per map key), and the stream flushes the buffer at most once
    per ``stream_interval`` and never while the previous write is still blocked on the
    client. So a slow or stalled client costs one buffer the size of the lane, never a
    backlog, and when it reads again it gets a few events that end in the latest state.
    (A map keeps the newest op of each key it touched, removes of keys long gone too: a
    lane whose keys move on, the newest readings by time, would pile up one op per key
    ever written. Past twice the lane's size in ops, :data:`RESYNC_SLACK` more, the
    buffer is dropped and the next flush is a ``state`` event of the whole map instead.)
    A change that cannot be written as JSON (a Python ``set`` held in memory, a list
    nested over 254 levels) is an ``error`` event instead, and the stream goes on.
    When nothing changes, a comment line every ``heartbeat_interval`` keeps proxies from
    closing the connection and finds clients that left without a FIN.
``stalled``
    A write of which the client has taken nothing for :data:`STALLED_WRITE_HEARTBEATS`
    heartbeat intervals (it stopped reading: its receive window is zero; a client that
    reads slowly is not stalled, see :mod:`~.taken`) would wait forever, and
    the heartbeat that finds clients gone would never come; so the connection is
    dropped, with one log line, and the stream unlinks.
``unlinked``
    When the client goes away (the server cancels the handler, or a write fails or
    stalls) or the server stops, :meth:`Plane.unlink` removes the uplink and the
    response ends. The stream runs in its request's handler task and starts no task of
    its own, so nothing outlives the connection.

Events after ``synced`` (``data`` is one line of JSON):

===================================================  ==========  ===============================
lane kinds                                           event       data
===================================================  ==========  ===============================
value, command (the last command), demand_value      ``set``     the new value
counter                                              ``set``     the new count
map, join_value, join_map, demand_map                ``update``  ``{"update": key, "value": v}``
                                                     ``remove``  ``{"remove": key}``
                                                     ``clear``   ``{"clear": true}``
                                                     ``state``   the whole map (on a re-sync)
any                                                  ``error``   ``{"error": why}``
===================================================  ==========  ===============================

Map keys in deltas keep their JSON type (``{"update": 3, ...}``), as in map commands;
in a ``state`` object they are stringified (see :mod:`swimstream.web.shared`).

An ``error`` event stands for a change that is not JSON; its data names the lane and
orjson's reason, and the server logs it once per stream. The stream stays open rather
than ending: a browser's EventSource reconnects an ended stream, and its re-sync would
be a 500 for as long as the lane holds that value, which makes EventSource give up for
good; an open stream puts the page right with the lane's next change. (EventSource
hands an ``error`` event to the same ``onerror`` listeners as a dropped connection, with
the reason in its ``data``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from swimstream.crdt import (
    CounterAdd,
    CounterSnapshot,
    MapClear,
    MapPut,
    MapRemove,
    MapSnapshot,
    Op,
    PNCounter,
    RegisterSet,
    RegisterSnapshot,
    Snapshot,
)
from swimstream.errors import CallbackError, SwimstreamError
from swimstream.runtime.coalesce import pending_for
from swimstream.web.shared import WebSettings, WebState, dumps, error_response
from swimstream.web.taken import taken_within

if TYPE_CHECKING:
    from swimstream.agent import Agent

log = logging.getLogger("swimstream.web")

EVENT_STREAM = "text/event-stream"
EVENT_STREAM_HEADERS = {
    "Content-Type": EVENT_STREAM,
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell nginx-style proxies not to buffer
}
HEARTBEAT = b": heartbeat\n\n"
RECONNECT_MILLIS = 3000
"""How long a browser's EventSource waits before it reconnects a dropped stream."""
STALLED_WRITE_HEARTBEATS = 2
"""A write (data or heartbeat) its client has not taken after this many
``heartbeat_interval`` ends the stream: the client stopped reading, and the stream would
hold its slot of ``max_streams`` and its buffer for as long as the connection lasts."""
RESYNC_SLACK = 256
"""Ops a map lane's buffer holds beyond twice the entries the lane had at its last sync
before the buffer is dropped for a ``state`` event (see the module docstring)."""
MAP_KINDS = frozenset({"map", "join_value", "join_map", "demand_map"})
"""The kinds whose buffer holds an op per key touched."""
STREAMS_RETRY_AFTER_SECONDS = 5
"""The ``Retry-After`` of a stream refused because ``max_streams`` are open: streams
last, so a slot frees up seldom; a client retrying every second would only spin."""


def stalled_after(settings: WebSettings) -> float:
    """Seconds a client may take nothing of a write (or send nothing of a body) before
    its connection is dropped (see :data:`STALLED_WRITE_HEARTBEATS`)."""
    return settings.heartbeat_interval * STALLED_WRITE_HEARTBEATS


def wants_stream(request: web.Request) -> bool:
    """Whether a GET asks for the live stream rather than the current state. (A HEAD
    never gets one: it would be headers followed by an endless body.)"""
    if request.method == "HEAD":
        return False
    if request.query.get("stream", "").lower() in ("1", "true", "yes"):
        return True
    return EVENT_STREAM in request.headers.get("Accept", "")


def sse_event(name: str, data: bytes) -> bytes:
    """One SSE event; ``data`` is compact JSON, so it is one line."""
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


class LaneUplink:
    """The lane side of one SSE stream: buffers changes, coalesced, for the writer.

    ``offer`` and ``offer_snapshot`` run inside the owning agent's turn, so they only
    fold the change into the buffer and wake the writer.
    """

    __slots__ = (
        "_counter",
        "_event",
        "_held",
        "_read",
        "_reported",
        "_resync",
        "_shared",
        "_size",
        "changed",
        "closed",
        "kind",
        "lane",
        "node_uri",
        "pending",
    )

    def __init__(
        self,
        node_uri: str,
        lane: str,
        kind: str,
        changed: asyncio.Event | None = None,
        event: Callable[[str, bytes], bytes] = sse_event,
        read: Callable[[], Any] | None = None,
    ) -> None:
        """``changed``: an event shared with other uplinks, which their one writer
        clears before it takes from each (:mod:`~.multiplex`); its own, without it.
        ``event`` renders one SSE event of the lane from its name and JSON data.
        ``read`` gives the lane's state now as JSON (what a GET answers), for a map's
        buffer that outgrew the lane (without it, the buffer keeps every op)."""
        self.node_uri = node_uri
        self.lane = lane
        self.kind = kind
        self.pending = pending_for(kind)
        self._shared = changed is not None
        self.changed = asyncio.Event() if changed is None else changed
        self._event = event
        self.closed = False  # the plane skips registering a link that closed early
        self._counter: PNCounter | None = None
        self._reported = False  # whether a change that is not JSON was logged
        self._read = read if kind in MAP_KINDS else None
        self._size = 0  # the lane's entries at the last sync
        self._held = 0  # ops in the buffer (at most: some may have coalesced)
        self._resync = False  # the buffer was dropped: the next flush reads the state

    def offer(self, op: Op) -> None:
        if self.closed:
            return
        if self._read is not None:
            if self._resync:
                return  # (the flush reads the state, this op's effect included)
            self._held += 1
            if self._held > 2 * self._size + RESYNC_SLACK:
                self.pending.take()
                self._resync = True
                self.changed.set()
                return
        self.pending.add(op)
        self.changed.set()

    def offer_snapshot(self, snapshot: Snapshot) -> None:
        if not self.closed:
            self.pending.add_snapshot(snapshot)
            self.changed.set()

    def sync(self, agent: Agent) -> bytes | str:
        """In the agent's turn: the lane's JSON state (or why it has none), buffer emptied.

        Nothing is read for a link that ended meanwhile (unlinked while the agent was
        busy): a big lane's JSON, or a demand lane's ``on_cue``, for nobody.
        A demand lane's ``on_cue`` that raises is why, not an error of the turn: the
        link's own sync, just before, ran it too and was counted and logged as a
        callback's failure; counted again, one stream's refusal was three failures."""
        if self.closed:
            return "the stream ended before its sync"
        lane = agent.lane(self.lane)
        self.pending.take()
        self._held, self._resync = 0, False
        if not self._shared:  # (a shared one may stand for another uplink's changes)
            self.changed.clear()
        snapshot = lane.snapshot()
        if isinstance(snapshot, MapSnapshot):
            self._size = len(snapshot.entries)
        if isinstance(snapshot, CounterSnapshot):
            # counter ops carry per-writer totals: a replica turns them into the count
            self._counter = PNCounter.from_snapshot(snapshot, "web")
        try:
            return dumps(lane.to_json())
        except TypeError as exc:
            return f"the state of lane {self.lane!r} is not JSON: {exc}"
        except CallbackError as exc:
            cause = exc.__cause__
            return f"{exc}: {type(cause).__name__}: {cause}" if cause is not None else str(exc)

    @property
    def urgent(self) -> asyncio.Event | None:
        """None: a lane stream writes its state itself, before its changes."""
        return None

    def stop(self) -> None:
        """End the stream: ignore further changes and wake the writer to notice."""
        self.closed = True
        self.changed.set()

    def unlinked(self) -> None:
        """Its agent was forgotten here (a hand-over): the stream ends, and its client's
        reconnect gets a fresh sync, or a 421 naming the instance that has the agent."""
        self.stop()

    def take_events(self) -> bytes:
        """What changed since the last call, rendered as SSE events (maybe nothing)."""
        if not self._shared:
            self.changed.clear()
        events: list[bytes] = []
        if self._resync:
            events.append(self._read_state())
        snapshot, ops = self.pending.take()
        if isinstance(snapshot, MapSnapshot):
            state = {key: value for key, _stamp, value in snapshot.entries}
            events.append(self._json_event("state", state))
        elif isinstance(snapshot, RegisterSnapshot):
            events.append(self._json_event("set", snapshot.value))
        counted = False
        for op in ops:
            if isinstance(op, RegisterSet):
                events.append(self._json_event("set", op.value))
            elif isinstance(op, MapPut):
                events.append(self._json_event("update", {"update": op.key, "value": op.value}))
            elif isinstance(op, MapRemove):
                events.append(self._json_event("remove", {"remove": op.key}))
            elif isinstance(op, MapClear):
                events.append(self._event("clear", b'{"clear":true}'))
            elif isinstance(op, CounterAdd):
                if self._counter is None:
                    self._counter = PNCounter("web")
                counted = self._counter.apply(op) or counted
        if counted and self._counter is not None:
            events.append(self._json_event("set", self._counter.value))
        return b"".join(events)

    def _read_state(self) -> bytes:
        """The ``state`` event of a map whose buffer was dropped (or an ``error`` event
        saying why the lane cannot be read), the buffer counted afresh from its size."""
        assert self._read is not None
        self._held, self._resync = 0, False
        try:
            state = self._read()
        except SwimstreamError as exc:  # (its agent cannot be loaded, an on_cue raised)
            return self._event("error", dumps({"error": f"lane {self.lane!r}: {exc}"}))
        self._size = len(state) if isinstance(state, dict) else 0
        return self._json_event("state", state)

    def _json_event(self, name: str, value: Any) -> bytes:
        """``value`` as the event ``name``, or an ``error`` event saying why it is not JSON
        (see the module docstring), logged the first time only: a lane that holds such
        values may change a thousand times a second."""
        try:
            return self._event(name, dumps(value))
        except TypeError as exc:  # (orjson's JSONEncodeError is a TypeError)
            reason = f"a change of lane {self.lane!r} of {self.node_uri} is not JSON: {exc}"
        if not self._reported:
            self._reported = True
            log.warning("%s; sent to its stream as an error event, logged once per stream", reason)
        return self._event("error", dumps({"error": reason}))


async def stream_lane(
    request: web.Request, state: WebState, node_uri: str, lane: str, kind: str
) -> web.StreamResponse:
    """Serve one SSE stream of ``lane`` through link → synced → events → unlinked.

    Raises the plane's NodeNotFoundError, LaneNotFoundError or ClosedResourceError
    before anything was sent, for the caller to turn into a status code.
    """
    limit = state.settings.max_streams
    if len(state.open_streams) >= limit:
        return refuse_stream(state, limit)
    plane = state.plane
    uplink = LaneUplink(node_uri, lane, kind, read=lambda: plane.get(node_uri, lane))
    plane.link(node_uri, lane, uplink)
    state.open_streams.add(uplink)
    try:
        initial = await plane.call(node_uri, uplink.sync)
        if isinstance(initial, str):
            return error_response(500, initial)
        response = web.StreamResponse(headers=EVENT_STREAM_HEADERS)
        synced = dumps({"node": node_uri, "lane": lane, "kind": kind})
        try:
            # (A client that left while the agent was busy syncing fails the prepare:
            # as quiet as one that leaves later. aiohttp closes such a response itself.)
            await response.prepare(request)
            await write_within(
                request,
                response,
                b"retry: %d\n\n" % RECONNECT_MILLIS
                + sse_event("state", initial)
                + sse_event("synced", synced),
                state.settings,
            )
            await pump(request, response, uplink, state.settings)
        except ConnectionError:
            pass  # the client left; unlink below
        except TimeoutError:  # a write the client did not take (write_within)
            drop_stalled(request, f"a stream of lane {lane!r} of {node_uri}", state.settings)
        return response
    finally:
        uplink.stop()
        state.open_streams.discard(uplink)
        plane.unlink(node_uri, lane, uplink)


def refuse_stream(state: WebState, limit: int) -> web.Response:
    """503: ``limit`` streams are open. Counted, not logged: any client can ask again."""
    state.registry.counter(
        "web_streams_refused", "Lane streams (SSE) refused because web.max_streams were open."
    ).inc()
    refused = error_response(
        503,
        f"too many lane streams are open ({limit}, web.max_streams); retry later",
        max_streams=limit,
    )
    refused.headers["Retry-After"] = str(STREAMS_RETRY_AFTER_SECONDS)
    return refused


class Source(Protocol):
    """What a stream's writer flushes: a lane's uplink, or several (:mod:`~.multiplex`)."""

    @property
    def changed(self) -> asyncio.Event: ...

    @property
    def closed(self) -> bool: ...

    @property
    def urgent(self) -> asyncio.Event | None:
        """Set when something waits that is no change (a new link's state): written at
        once rather than after ``stream_interval``, which spaces changes only."""

    def take_events(self) -> bytes: ...


async def pump(
    request: web.Request, response: web.StreamResponse, source: Source, settings: WebSettings
) -> None:
    """The ``events`` state: flush coalesced changes until the stream is stopped."""
    loop = asyncio.get_running_loop()
    last_flush = loop.time()
    while not source.closed:
        try:
            async with asyncio.timeout(settings.heartbeat_interval):
                await source.changed.wait()
        except TimeoutError:
            await write_within(request, response, HEARTBEAT, settings)
            continue
        pause = last_flush + settings.stream_interval - loop.time()
        if pause > 0:  # more changes fold into the buffer meanwhile
            await _pause(pause, source.urgent)
        if source.closed:
            return
        chunk = source.take_events()
        if chunk:
            # (blocks while the client does not read)
            await write_within(request, response, chunk, settings)
            last_flush = loop.time()


async def _pause(seconds: float, urgent: asyncio.Event | None) -> None:
    """Sleep ``seconds``, or less if ``urgent`` is set meanwhile."""
    if urgent is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await urgent.wait()


async def write_within(
    request: web.Request, response: web.StreamResponse, data: bytes, settings: WebSettings
) -> None:
    """Write ``data``; TimeoutError when the client has taken nothing of it in time (see
    :data:`STALLED_WRITE_HEARTBEATS` and :mod:`~.taken`)."""
    await taken_within(request.transport, stalled_after(settings), response.write(data))


def drop_stalled(request: web.Request, what: str, settings: WebSettings) -> None:
    """Drop the connection of ``what`` (a stream) whose client stopped reading. Aborted,
    not closed: a close would wait for the client to take what is still buffered, which
    it does not."""
    stalled = stalled_after(settings)
    log.info(
        "the client of %s took nothing for %g s (it stopped reading); connection dropped",
        what,
        stalled,
    )
    transport = request.transport
    if transport is not None:
        transport.abort()
