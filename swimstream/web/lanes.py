"""Lanes over HTTP, the SwimOS HTTP-lane convention: ``/<node uri>?lane=<lane>``.

``GET`` answers the lane's current state as JSON; it reads the lane directly (creating
the agent if it is not in memory: agents exist on first use), so a read never waits
behind a busy mailbox. With ``Accept: text/event-stream`` or ``stream=1`` the same URL
is a live stream instead (:mod:`swimstream.web.sse`).

With several instances, an agent whose shard another instance holds is not served
here: 421 (or 503 while shards move) names the shard, rather than a copy answering.

``POST`` sends the JSON body as a command to the lane and answers once the command's
callback finished: 200 ``{"ok": true}``, or 422 with the callback's error message. So a
client that got 200 and then GETs sees the effect. A command whose callback has not
finished after ``command_timeout`` seconds stays queued and is answered 202
``{"queued": true}``: it was accepted, not refused, so the client must not resend it.

Backpressure: the plane queues a command even when it fills the agent's mailbox (it
only asks the sender to pause), so that command is accepted; from then on the node is
*full* and further commands are refused with 503 and ``Retry-After`` until the mailbox
drained to half (:class:`MailboxGate`). A 503 therefore always means "not queued, safe to
retry", and a retry never applies a command twice.

The path is matched still percent-encoded, so ``/device/a%2Fb`` addresses the agent
whose id is ``a/b``, as the node URI spells it; a path whose escapes are not UTF-8
(``/device/%ff``) is 400.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestPayloadError

from swimstream.agent.downlink import COMMAND_KINDS
from swimstream.errors import (
    AgentRestoreError,
    CallbackError,
    ClosedResourceError,
    LaneNotFoundError,
    NodeNotFoundError,
    StoreError,
)
from swimstream.web.body_coding import (
    BodyNotDecoded,
    DecodedTooLarge,
    UnsupportedCoding,
    coding_of,
    decoded,
)
from swimstream.web.request_log import body_problem
from swimstream.web.shared import (
    Route,
    WebState,
    error_response,
    json_response,
    state_of,
    undecodable_segment,
)
from swimstream.web.sse import stalled_after, stream_lane, wants_stream

if TYPE_CHECKING:
    from swimstream.runtime import Plane

RETRY_AFTER_SECONDS = 1

_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19
"""Every integer beyond 64 bits has 19 digits or more (-2**63 and 2**64 - 1 have 19, 20).
Sought in the body with every digit made ``0``: a megabyte in a millisecond, where a
regular expression takes ten."""


class MailboxGate:
    """Nodes whose mailbox is full: commands to them are refused until it drains.

    Owns one waiting task per full node, all ended by :meth:`close`.
    """

    def __init__(self, plane: Plane) -> None:
        self._plane = plane
        self._waits: dict[str, asyncio.Task[None]] = {}

    def is_full(self, node_uri: str) -> bool:
        """Whether commands to ``node_uri`` are refused right now."""
        return node_uri in self._waits

    def mark_full(self, node_uri: str) -> None:
        """``node_uri``'s mailbox reached capacity: refuse until it is half empty."""
        if node_uri not in self._waits:
            task = asyncio.get_running_loop().create_task(
                self._wait(node_uri), name=f"swimstream-web-room {node_uri}"
            )
            self._waits[node_uri] = task

    async def _wait(self, node_uri: str) -> None:
        try:
            await self._plane.wait_for_room(node_uri)
        finally:
            self._waits.pop(node_uri, None)

    async def close(self) -> None:
        """End every waiting task."""
        tasks = list(self._waits.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


GATE = web.AppKey("swimstream_web_gate", MailboxGate)


def _target(
    request: web.Request, command: bool = False
) -> tuple[WebState, str, str, Route] | web.Response:
    """The node URI, lane name and route a lane request names, or the error response."""
    state = state_of(request)
    lanes = request.query.getall("lane", [])
    if len(lanes) > 1:
        message = (
            f"query parameter 'lane' is given {len(lanes)} times: a request names one "
            "lane (/_streams carries several)"
        )
        return error_response(400, message)
    lane = lanes[0] if lanes else ""
    raw_path = _node_path(request)
    if isinstance(raw_path, web.Response):
        return raw_path
    found = address_lane(state, raw_path, lane, command)
    if isinstance(found, web.Response):
        return found
    node_uri, route = found
    return state, node_uri, lane, route


def _node_path(request: web.Request) -> str | web.Response:
    """The node URI a lane request names (still percent-encoded): its path, or, at the
    root, its query parameter ``node``.

    The query form is for clients whose URL parser rewrites the path: a browser takes
    ``%2E`` and ``%2E%2E`` for the dot segments ``.`` and ``..``, so the dashboard's
    commands to agents whose id is "." or ".." went to ``/device/`` (404) or ``/``
    (405). Named in both the path and the query, the request is refused rather than
    one of them picked."""
    nodes = request.query.getall("node", [])
    raw_path = request.rel_url.raw_path
    if not nodes:
        return raw_path
    if len(nodes) > 1 or raw_path != "/":
        message = (
            "a request names its node once: in the path (/<node uri>?lane=<lane>) or in "
            "query parameter 'node' at the root (/?node=<node uri>&lane=<lane>)"
        )
        return error_response(400, message)
    return nodes[0]


def address_lane(
    state: WebState, raw_path: str, lane: str, command: bool = False
) -> tuple[str, Route] | web.Response:
    """The canonical node URI of ``raw_path`` (still percent-encoded) and its route, when
    it names an agent with ``lane`` that this instance serves; else the error answer."""
    try:
        node_uri, route = state.address(raw_path)
    except NodeNotFoundError as exc:
        bad = undecodable_segment(raw_path)
        if bad is not None:
            message = f"{raw_path!r} is no node URI: {bad!r} does not percent-decode to UTF-8"
            return error_response(400, message)
        return error_response(404, str(exc))
    if not lane:
        return error_response(400, "missing query parameter 'lane' (/<node uri>?lane=<lane>)")
    if lane not in route.lanes:
        message = f"agent {node_uri} ({route.agent}) has no lane {lane!r}"
        return error_response(404, message, lanes=sorted(route.lanes))
    refused = _misplaced(state, node_uri, command)
    if refused is not None:
        return refused
    return node_uri, route


def _misplaced(state: WebState, node_uri: str, command: bool) -> web.Response | None:
    """The answer when this instance does not serve ``node_uri`` now (not a copy made
    here: see swimstream/service/placement.py), else None."""
    misplaced = state.placement(node_uri, command=command)
    if misplaced is None:
        return None
    refused = error_response(misplaced.status, misplaced.message, shard=misplaced.shard)
    if misplaced.status == 503:
        refused.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return refused


async def get_lane(request: web.Request) -> web.StreamResponse:
    """``GET /<node>?lane=<lane>``: the lane's state, or its live stream."""
    target = _target(request)
    if isinstance(target, web.Response):
        return target
    state, node_uri, lane, route = target
    try:
        if wants_stream(request):
            return await stream_lane(request, state, node_uri, lane, route.lanes[lane])
        if not _made(state, node_uri):
            message = (
                f"no agent {node_uri} yet: no record, command or link has made it (a read "
                "makes none; a POST or a stream does)"
            )
            return error_response(404, message)
        value = state.plane.get(node_uri, lane)
    except (NodeNotFoundError, LaneNotFoundError) as exc:
        return error_response(404, str(exc))
    except (ClosedResourceError, StoreError) as exc:  # (a damaged store: stopping)
        return error_response(503, str(exc))
    except AgentRestoreError as exc:
        return error_response(500, str(exc))
    except CallbackError as exc:
        # A demand lane's ``on_cue`` raised. Reported as the agents' failures are (logged
        # at most once per 10 s for its site, counted): as an error of the server, every
        # read logged a traceback, so any client could flood the log.
        state.plane.failures.record(
            node_uri, route.pattern, lane, exc.callback, exc.__cause__ or exc
        )
        return error_response(500, describe_failure(exc))
    try:
        return json_response(value)
    except TypeError as exc:
        return error_response(500, f"the state of lane {lane!r} of {node_uri} is not JSON: {exc}")


def _made(state: WebState, node_uri: str) -> bool:
    """Whether the agent exists, in memory or stored (then loaded back, for the read that
    follows). A GET is a read: making the agent would run its ``on_start`` (its timers
    then publish, and are stored), so a typo in a URL would leave an agent behind for
    good, as Kafka Streams' interactive queries answer an unknown key with nothing
    rather than create it."""
    return state.plane.activate_existing(node_uri)


async def post_command_at_root(request: web.Request) -> web.Response:
    """``POST /?node=<node uri>&lane=<lane>``: :func:`post_command` for a node named in
    the query (see :func:`_node_path`); the root takes no other POST."""
    if "node" not in request.query:
        response = error_response(
            405, "/ answers GET only (a command there names its node: /?node=<uri>&lane=<lane>)"
        )
        response.headers["Allow"] = "GET, HEAD"
        return response
    return await post_command(request)


async def post_command(request: web.Request) -> web.Response:
    """``POST /<node>?lane=<lane>``: send the JSON body as a command and await its callback."""
    target = _target(request, command=True)
    if isinstance(target, web.Response):
        return target
    state, node_uri, lane, route = target
    kind = route.lanes[lane]
    if kind not in COMMAND_KINDS:
        takes = sorted(name for name, k in route.lanes.items() if k in COMMAND_KINDS)
        refused = error_response(
            405, f"lane {lane!r} ({kind}) does not take commands", command_lanes=takes
        )
        refused.headers["Allow"] = "GET, HEAD"
        return refused
    body = await read_body(request, state)
    if isinstance(body, web.Response):
        return body
    try:
        # An empty body is null: `curl -X POST .../tick?lane=tick` triggers a command lane.
        value: Any = orjson.loads(body) if body.strip() else None
        orjson.dumps(value)  # what GET will write: orjson reads 1,024 levels, writes 254
    except orjson.JSONDecodeError as exc:
        return error_response(400, f"the body is not valid JSON: {exc}")
    except orjson.JSONEncodeError as exc:
        return error_response(400, f"the body could not be served back as JSON: {exc}")
    wide = _wide_integer(body)
    if wide is not None:
        message = f"the integer {wide} is beyond 64 bits: it would be read as a float"
        return error_response(400, f"the body could not be served back as JSON: {message}")
    moving = _misplaced(state, node_uri, command=True)  # (again: the body took its time)
    if moving is not None:
        return moving
    gate = request.app[GATE]
    if gate.is_full(node_uri):
        return _mailbox_full(node_uri)
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def ack(error: BaseException | None) -> None:
        if not done.done():
            done.set_result(error)

    try:
        has_room = state.plane.submit(node_uri, lane, value, ack)
    except (NodeNotFoundError, LaneNotFoundError) as exc:
        return error_response(404, str(exc))
    except (ClosedResourceError, StoreError) as exc:  # (a damaged store: stopping)
        return error_response(503, str(exc))
    except AgentRestoreError as exc:
        return error_response(500, str(exc))
    if not has_room:
        gate.mark_full(node_uri)
    return await _answer(state, done)


async def read_body(request: web.Request, state: WebState) -> bytes | web.Response:
    """The whole body of a POST, decoded, or the error answer: 413 over
    ``max_body_size`` (as sent or decoded), 408 when it has not all come within the
    time a stream's write gets, 415 for a ``Content-Encoding`` not taken, 400 for a body
    that does not decode as its ``Content-Encoding`` says (:mod:`~.body_coding`)."""
    limit = state.settings.max_body_size
    try:
        coding = coding_of(request.headers.get(hdrs.CONTENT_ENCODING))
    except UnsupportedCoding as exc:
        return error_response(415, str(exc))
    if request.content_length is not None and request.content_length > limit:
        return _too_large(limit)
    try:
        async with asyncio.timeout(stalled_after(state.settings)):
            body = await request.read()
    except TimeoutError:
        return _body_not_received(stalled_after(state.settings))
    except web.HTTPRequestEntityTooLarge:
        return _too_large(limit)
    except RequestPayloadError as exc:  # a chunked body whose framing is broken
        # aiohttp closes the connection (the rest cannot be skipped), which the answer
        # says (keep_alive), and logs one WARNING line (request_log).
        return error_response(400, f"the body cannot be read: {body_problem(exc) or exc}")
    if coding is None:
        return body
    try:
        return decoded(body, coding, limit)
    except DecodedTooLarge:
        return _too_large(limit)
    except BodyNotDecoded as exc:
        return error_response(400, f"the body cannot be read: {exc}")


async def _answer(state: WebState, done: asyncio.Future[BaseException | None]) -> web.Response:
    """Wait for the command's ack (or the timeout, or the server stopping)."""
    waits: list[asyncio.Future[Any]] = [done, state.stopping]
    await asyncio.wait(
        waits,
        timeout=state.settings.command_timeout,
        return_when=asyncio.FIRST_COMPLETED,
    )
    if not done.done():
        return json_response({"queued": True}, status=202)
    error = done.result()
    if error is None:
        return json_response({"ok": True})
    return error_response(422, describe_failure(error))


def _wide_integer(body: bytes) -> str | None:
    """The first integer of ``body`` (JSON orjson read) outside -2**63 .. 2**64 - 1, cut
    to 40 characters, or None. orjson reads such an integer as the nearest float and would
    apply a number nobody sent, so the stdlib, which keeps every digit, reads the body
    again: only when a run of digits is long enough for one, so other bodies cost a scan."""
    if _LONG_DIGIT_RUN not in body.translate(_DIGITS_AS_ZEROS):
        return None
    wide: list[str] = []

    def check(literal: str) -> int:
        # (more than 20 characters is beyond 64 bits; int() refuses over 4,300 digits)
        if len(literal) > 20 or not -(2**63) <= int(literal) < 2**64:
            wide.append(literal if len(literal) <= 40 else literal[:37] + "...")
        return 0  # the value is not kept

    try:
        json.loads(body, parse_int=check)
    except ValueError:  # (should the stdlib refuse what orjson read: orjson's reading stands)
        return None
    return wide[0] if wide else None


def describe_failure(error: BaseException) -> str:
    """One line naming where a command failed and why, without the traceback."""
    cause = error.__cause__
    if isinstance(error, CallbackError) and cause is not None:
        return f"{error}: {type(cause).__name__}: {cause}"
    return f"{type(error).__name__}: {error}"


def _body_not_received(seconds: float) -> web.Response:
    """408: the body stopped coming. Without a deadline a client that sends a POST's
    headers and not all of its body held the connection, the handler and what came of
    the body for good (no timer of aiohttp's runs while a handler reads). The rest of
    the body may still come, so the connection is closed rather than kept."""
    response = error_response(408, f"the body was not received in full within {seconds:g} s")
    response.force_close()
    return response


def _too_large(limit: int) -> web.Response:
    return error_response(413, f"the body is larger than {limit} bytes")


def _mailbox_full(node_uri: str) -> web.Response:
    response = error_response(503, f"the mailbox of {node_uri} is full; retry later")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
