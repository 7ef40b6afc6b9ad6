"""One stream for many lanes: what a browser tab opens instead of a stream per lane.

A browser opens at most 6 HTTP/1.1 connections to a host, for all its tabs together,
and an SSE stream holds one for as long as it is open: a page with a stream per lane
starved itself with a few lanes, and a second tab, whose requests stayed pending for
good. So a page opens one multiplexed stream and says which lanes it carries with short
requests on the same URL; lanes come and go without the stream reconnecting.

``GET /_streams`` (an SSE stream, whatever the ``Accept``) goes through:

``refused``
    With ``max_streams`` multiplexed streams open, 503 with ``Retry-After``.
``opened``
    ``event: opened`` with ``{"stream": id}`` (not ``open``: EventSource fires an
    ``open`` of its own on connecting): the id, unguessable, names the stream in
    the requests that change its lanes. Nothing is linked yet.
``links``
    ``POST /_streams?stream=<id>`` with ``{"link": [{"id": n, "node": uri, "lane":
    name}, ...], "unlink": [n, ...]}`` (unlinks first) links each lane as a lane
    stream links it (:mod:`~.sse`) and answers ``{"linked": [n, ...], "refused": [{"id":
    n, "status": s, "error": why, ...}]}``: a refusal is what a lane stream's ``GET``
    would have answered (404, 421, 503, ...); each linked lane takes a slot of
    ``max_streams``, as a lane stream does. ``n`` is the client's name for the link, a
    non-negative integer; linking a name again replaces its link. 404 for a stream not
    open (any more): its client's reconnect opens a new one, to link its lanes again.
    A link waits for its own agent's turn to sync, and nothing else does: the links of
    one POST sync side by side, and other POSTs are served meanwhile (an agent busy in
    a long async command held up every change of the stream). A change meanwhile that
    unlinks or links again a name still syncing ends that link: its POST refuses it
    with 409.
``events``
    A link's events are a lane stream's (``state`` and ``synced`` first, then ``set``,
    ``update``, ...), coalesced and flushed the same way (but for a new link's state,
    written at once: ``stream_interval`` spaces changes), with ``data`` being ``{"link":
    n, "data": <the lane stream's data>}``, written in that order so a client
    may cut a delta's own JSON text out of it. A link whose agent was forgotten here (a
    hand-over) ends with ``event: unlinked`` and ``{"link": n}``: its client links it
    again, and gets a fresh sync or the 421 naming the instance that has it now.
    Once a POST that unlinks (or links again) ``n`` is answered, nothing of the link
    it ended is written but what was being written as it came (the POST's answer and
    the stream are two connections): that comes before the new link's ``state``, so a
    client that uses a name again takes a link's events from its ``state`` on. (The
    dashboard names each link afresh, and drops events of names it no longer holds.)
``closed``
    When the client leaves, stalls or the server stops: every link is unlinked.

The links are served by the stream's own request handler (the one writer), so nothing
outlives the connection; the requests that change them only link or unlink.
"""

from __future__ import annotations

import asyncio
import reprlib
import secrets
from typing import Any, TypeGuard

import orjson
from aiohttp import web

from swimstream.errors import (
    AgentRestoreError,
    CallbackError,
    ClosedResourceError,
    LaneNotFoundError,
    NodeNotFoundError,
    StoreError,
)
from swimstream.web.lanes import address_lane, describe_failure, read_body
from swimstream.web.shared import WebState, dumps, error_response, json_response, state_of
from swimstream.web.sse import (
    EVENT_STREAM_HEADERS,
    RECONNECT_MILLIS,
    LaneUplink,
    drop_stalled,
    pump,
    refuse_stream,
    sse_event,
    write_within,
)


class Multiplex:
    """The lanes one multiplexed stream carries, and what it has still to write.

    Its uplinks share its ``changed`` event: the writer clears it, then takes from each.
    """

    def __init__(self, state: WebState) -> None:
        self.stream_id = secrets.token_urlsafe(16)
        self.changed = asyncio.Event()
        self.urgent = asyncio.Event()  # a new link's state waits: no stream_interval for it
        self.closed = False
        self._state = state
        self._links: dict[int, LaneUplink] = {}
        # Links waiting for their agent's turn to sync, by link: a change meanwhile that
        # names one again drops it (its sync then links nothing), so a name links once.
        # Not a lock: an agent busy in a long async command held up every later change.
        self._syncing: dict[int, LaneUplink] = {}
        # The syncs of new links, ahead of their changes, by link: dropped with it.
        self._outbox: dict[int, bytes] = {}

    def take_events(self) -> bytes:
        """What to write now: new links' syncs, then every link's changes."""
        self.changed.clear()
        self.urgent.clear()
        chunks, self._outbox = list(self._outbox.values()), {}
        for link_id, uplink in list(self._links.items()):
            if uplink.closed:  # its agent was forgotten here (a hand-over)
                self._drop(link_id)
                chunks.append(sse_event("unlinked", dumps({"link": link_id})))
            else:
                chunks.append(uplink.take_events())
        return b"".join(chunks)

    def stop(self) -> None:
        """End the stream (the server stops): the writer notices and unlinks all."""
        self.closed = True
        self.changed.set()

    def close(self) -> None:
        """Unlink every lane; the stream ended."""
        self.stop()
        for link_id in [*self._links, *self._syncing]:
            self._drop(link_id)

    async def change(self, links: list[tuple[int, str, str]], unlinks: list[int]) -> Any:
        """Unlink ``unlinks``, then link each ``(id, node, lane)``; the POST's answer."""
        for link_id in unlinks:
            self._drop(link_id)
        linked: list[int] = []
        refused: list[dict[str, Any]] = []
        # (each link's sync waits for its own agent only: linked side by side)
        refusals = await asyncio.gather(*(self._link(*link) for link in links))
        for (link_id, _path, _lane), refusal in zip(links, refusals, strict=True):
            if refusal is None:
                linked.append(link_id)
            else:
                refused.append({"id": link_id, **refusal})
        return {"linked": linked, "refused": refused}

    async def _link(self, link_id: int, raw_path: str, lane: str) -> dict[str, Any] | None:
        """Link one lane as :func:`~.sse.stream_lane` does; None, or why not."""
        self._drop(link_id)
        state = self._state
        found = address_lane(state, raw_path, lane)
        if isinstance(found, web.Response):
            return _refusal(found)
        if len(state.open_streams) >= state.settings.max_streams:
            return _refusal(refuse_stream(state, state.settings.max_streams))
        node_uri, route = found
        kind = route.lanes[lane]
        prefix = b'{"link":%d,"data":' % link_id

        def event(name: str, data: bytes) -> bytes:
            return sse_event(name, prefix + data + b"}")

        plane = state.plane
        uplink = LaneUplink(
            node_uri, lane, kind, self.changed, event, lambda: plane.get(node_uri, lane)
        )
        try:
            plane.link(node_uri, lane, uplink)
            state.open_streams.add(uplink)
            self._syncing[link_id] = uplink
            initial = await plane.call(node_uri, uplink.sync)
        except (NodeNotFoundError, LaneNotFoundError) as exc:
            initial = _failure(404, str(exc))
        except (ClosedResourceError, StoreError) as exc:  # (a damaged store: stopping)
            initial = _failure(503, str(exc))
        except (AgentRestoreError, CallbackError) as exc:
            initial = _failure(500, describe_failure(exc))
        except BaseException:
            # Cancelled (the POST's client left while the agent was busy) or worse: the
            # link is not the stream's yet, so nothing else would ever end it.
            self._unlink(uplink)
            raise
        finally:
            if self._syncing.get(link_id) is uplink:
                del self._syncing[link_id]
        if isinstance(initial, str):
            initial = _failure(500, initial)
        if self.closed:
            initial = _failure(404, "the stream ended meanwhile")
        elif uplink.closed:  # a later change named the link again, or its agent left
            initial = _failure(409, "unlinked before its sync: link it again to follow it")
        if isinstance(initial, dict):
            self._unlink(uplink)
            return initial
        synced = dumps({"node": node_uri, "lane": lane, "kind": kind})
        self._outbox[link_id] = event("state", initial) + event("synced", synced)
        self._links[link_id] = uplink  # (no await since the sync: no change is missed)
        self.changed.set()
        self.urgent.set()
        return None

    def _drop(self, link_id: int) -> None:
        syncing = self._syncing.pop(link_id, None)
        if syncing is not None:
            self._unlink(syncing)  # (its sync, when it comes, links nothing)
        self._outbox.pop(link_id, None)  # (not written yet: its client unlinked it)
        uplink = self._links.pop(link_id, None)
        if uplink is not None:
            self._unlink(uplink)

    def _unlink(self, uplink: LaneUplink) -> None:
        """End ``uplink``'s link and free its slot of ``max_streams``."""
        uplink.stop()
        self._state.open_streams.discard(uplink)
        self._state.plane.unlink(uplink.node_uri, uplink.lane, uplink)


def _failure(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "error": message}


def _refusal(response: web.Response) -> dict[str, Any]:
    """A refusing answer as one entry of a POST's ``refused``."""
    assert isinstance(response.body, bytes)
    return {"status": response.status, **orjson.loads(response.body)}


async def open_stream(request: web.Request) -> web.StreamResponse:
    """``GET /_streams``: a multiplexed stream through opened → links → events → closed."""
    if request.method == "HEAD":  # headers, without the endless body
        return web.Response(headers=EVENT_STREAM_HEADERS)
    state = state_of(request)
    limit = state.settings.max_streams
    if len(state.multiplexed) >= limit:
        return refuse_stream(state, limit)
    mux = Multiplex(state)
    state.multiplexed[mux.stream_id] = mux
    try:
        response = web.StreamResponse(headers=EVENT_STREAM_HEADERS)
        opened = dumps({"stream": mux.stream_id})
        try:
            await response.prepare(request)
            await write_within(
                request,
                response,
                b"retry: %d\n\n" % RECONNECT_MILLIS + sse_event("opened", opened),
                state.settings,
            )
            await pump(request, response, mux, state.settings)
        except ConnectionError:
            pass  # the client left; unlink below
        except TimeoutError:  # a write the client did not take
            drop_stalled(request, "a multiplexed stream", state.settings)
        return response
    finally:
        del state.multiplexed[mux.stream_id]
        mux.close()


async def change_links(request: web.Request) -> web.Response:
    """``POST /_streams?stream=<id>``: link and unlink lanes of an open stream."""
    state = state_of(request)
    mux = state.multiplexed.get(request.query.get("stream", ""))
    if not isinstance(mux, Multiplex):
        return error_response(404, "no such stream is open (it ended: open another)")
    body = await read_body(request, state)
    if isinstance(body, web.Response):
        return body
    try:
        links, unlinks = _parse(orjson.loads(body or b"{}"))
    except (orjson.JSONDecodeError, ValueError) as exc:
        return error_response(400, f"the body is not a change of links: {exc}")
    return json_response(await mux.change(links, unlinks))


def _parse(body: Any) -> tuple[list[tuple[int, str, str]], list[int]]:
    """``{"link": [{"id", "node", "lane"}], "unlink": [id]}``; ValueError saying what is wrong."""
    if not isinstance(body, dict):
        raise ValueError('expected {"link": [...], "unlink": [...]}')
    entries = body.get("link", [])
    if not isinstance(entries, list):
        raise ValueError(f'"link" is a list of links, not {_shown(entries)}')
    links: list[tuple[int, str, str]] = []
    for entry in entries:
        link_id, node, lane = (
            (entry.get(k) for k in ("id", "node", "lane"))
            if isinstance(entry, dict)
            else (None, None, None)
        )
        if not _is_link_id(link_id) or not isinstance(node, str) or not isinstance(lane, str):
            expected = '{"id": n >= 0, "node": uri, "lane": name}'
            raise ValueError(f"a link is {expected}, not {_shown(entry)}")
        links.append((link_id, node, lane))
    unlinks = body.get("unlink", [])
    if not isinstance(unlinks, list) or not all(_is_link_id(n) for n in unlinks):
        raise ValueError(f'"unlink" is a list of link ids (n >= 0), not {_shown(unlinks)}')
    return links, unlinks


def _shown(value: Any) -> str:
    """``value`` cut short for an error message: its whole repr could be as long as the
    body, and Python refuses to repr it past 1,000 levels, which orjson reads."""
    return reprlib.repr(value)


def _is_link_id(value: Any) -> TypeGuard[int]:
    return type(value) is int and 0 <= value < 1 << 53  # (exact in a browser's numbers)
