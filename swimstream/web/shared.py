"""What every handler on the web port shares: the server's state, addressing and JSON.

The handlers are plain functions over one :class:`WebState` stored in the aiohttp
application, so each module (lanes, streams, health, dashboard) reads as a list of
endpoints and the server module only wires them.

JSON is written with orjson. Map lanes may have non-string keys (``MapLane[int, float]``)
while JSON objects may not, so keys are *stringified* the way orjson's
``OPT_NON_STR_KEYS`` does it: ``1`` becomes ``"1"``, ``None`` becomes ``"null"``,
``True`` becomes ``"true"``. That keeps a whole lane one readable object; a key that
must round-trip with its type is carried as a value in the deltas of a lane stream.

Node URIs are matched with a route table rebuilt from the plane's own route patterns,
so the web layer can answer 404 and spell a URI canonically (``/device/%61`` is
``/device/a``) without creating an agent and without reaching into the plane. A path
whose percent-escapes do not decode to UTF-8 (``/device/%ff``) names no node at all,
whatever the routes: it is the client's mistake, answered 400 (:func:`undecodable_segment`).
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from aiohttp import web

from swimstream.errors import NodeNotFoundError, SwimstreamError
from swimstream.routing import RouteTable, unquote_segment

if TYPE_CHECKING:
    from swimstream.metrics import MetricsRegistry
    from swimstream.runtime import Plane
    from swimstream.web.health import HealthProvider

JSON_TYPE = "application/json"


async def listen_on(runner: web.AppRunner, host: str, port: int) -> None:
    """Start serving ``runner`` on ``host:port``; a port that cannot be had (in use,
    privileged) is a one-line error naming ``web.listen`` and what to do, not an OSError
    traceback."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason += " (another process listens there: set web.listen to a free port)"
        raise SwimstreamError(f"web.listen: cannot listen on {host}:{port}: {reason}") from exc


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The tunables of the web port (see :class:`~swimstream.web.WebServer`)."""

    app_name: str = "swimstream"
    max_body_size: int = 1 << 20
    command_timeout: float = 30.0
    heartbeat_interval: float = 15.0
    stream_interval: float = 0.05
    max_streams: int = 1000


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the plane as the web layer describes it."""

    pattern: str
    agent: str
    lanes: dict[str, str]


class OpenStream(Protocol):
    """A live response the server must end when it stops (an SSE lane stream)."""

    def stop(self) -> None: ...


class Misplacement(Protocol):
    """Why this instance does not serve an agent now (another holds its shard)."""

    @property
    def status(self) -> int: ...

    @property
    def message(self) -> str: ...

    @property
    def shard(self) -> int: ...


class Placement(Protocol):
    """``placement(node_uri)``: None when this instance serves the agent, else why not;
    ``command=True`` asks for a command rather than a read."""

    def __call__(self, node_uri: str, /, *, command: bool = False) -> Misplacement | None: ...


def _everywhere(_node_uri: str, *, command: bool = False) -> Misplacement | None:
    return None


@dataclass(eq=False)
class WebState:
    """Everything the handlers need, owned by one running :class:`WebServer`."""

    plane: Plane
    registry: MetricsRegistry
    health: HealthProvider
    settings: WebSettings
    started: float
    routes: dict[str, Route] = field(default_factory=dict)
    table: RouteTable[str] = field(default_factory=RouteTable)
    stopping: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    open_streams: set[OpenStream] = field(default_factory=set)
    """Every lane linked to a stream: a lane stream, or one lane of a multiplexed one."""
    multiplexed: dict[str, OpenStream] = field(default_factory=dict)
    """The multiplexed streams open, by id (:mod:`~.multiplex`)."""
    placement: Placement = _everywhere

    def __post_init__(self) -> None:
        for pattern, agent, lanes in self.plane.describe_routes():
            self.routes[pattern] = Route(pattern, agent, dict(lanes))
            self.table.add(pattern, pattern)

    def address(self, raw_path: str) -> tuple[str, Route]:
        """The canonical node URI of a request path (still percent-encoded) and its route.

        Raises NodeNotFoundError naming the path when no route matches.
        """
        found = self.table.lookup(raw_path)
        if found is None:
            raise NodeNotFoundError(f"no agent route matches {raw_path!r}")
        return found.uri, self.routes[found.target]


def undecodable_segment(raw_path: str) -> str | None:
    """The first segment of ``raw_path`` (still percent-encoded) whose escapes do not
    decode to UTF-8 text, or None. Node URI values are text, so no node is named so."""
    for segment in raw_path.split("/"):
        if unquote_segment(segment) is None:
            return segment
    return None


STATE = web.AppKey("swimstream_web_state", WebState)


def state_of(request: web.Request) -> WebState:
    """The server state behind ``request``."""
    return request.app[STATE]


def dumps(value: Any) -> bytes:
    """JSON bytes of ``value``; non-string map keys are stringified (see the module doc)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response; raises TypeError (orjson's) when ``value`` is not JSON."""
    return web.Response(body=dumps(value), status=status, content_type=JSON_TYPE, headers=headers)


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    """``{"error": message, ...}`` with ``status``: every error of the web port looks so."""
    return json_response({"error": message, **extra}, status=status)
