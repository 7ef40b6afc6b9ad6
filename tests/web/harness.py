"""What the web tests share: the towers example (plus a test agent) served over loopback.

Every test talks HTTP over loopback with aiohttp's client against a real
:class:`WebServer` on a free port; nothing of the web layer is replaced. The fixtures in
``conftest.py`` start servers through :func:`serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
import orjson
from yarl import URL

from examples.towers import ROUTES
from swimstream import Agent, CommandLane, ValueLane
from swimstream.metrics import MetricsRegistry
from swimstream.runtime import AgentStore, Plane
from swimstream.testing import open_plane
from swimstream.web import HealthReport, WebServer


class Valve(Agent):
    """A test agent whose async command holds its mailbox until the test opens it."""

    opened: ClassVar[asyncio.Event]
    entered: ClassVar[int] = 0
    hold = CommandLane[Any]()
    passed = ValueLane[int](default=0)

    @hold.on_command
    async def on_hold(self, value: Any) -> None:
        Valve.entered += 1
        await Valve.opened.wait()
        self.passed.set(self.passed.get() + 1)


TEST_ROUTES: dict[str, type[Agent]] = {**ROUTES, "/valve/:id": Valve}


@dataclass
class SettableHealth:
    """A HealthProvider whose answers the test sets."""

    healthy: HealthReport = field(default_factory=lambda: HealthReport(True, {"plane": "running"}))
    ready: HealthReport = field(
        default_factory=lambda: HealthReport(True, {"sources": "caught up"})
    )
    broken: bool = False

    def health(self) -> HealthReport:
        if self.broken:
            raise RuntimeError("the provider itself failed")
        return self.healthy

    def readiness(self) -> HealthReport:
        return self.ready


@dataclass
class Served:
    """A running plane and web server, and a client session bound to the server."""

    plane: Plane
    server: WebServer
    client: aiohttp.ClientSession
    registry: MetricsRegistry
    health: SettableHealth

    def url(self, path: str) -> URL:
        """The server URL of ``path``, kept percent-encoded exactly as written."""
        return URL(self.server.url + path, encoded=True)

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with self.client.get(self.url(path)) as response:
            return response.status, orjson.loads(await response.read())

    async def post_json(self, path: str, value: Any) -> tuple[int, Any]:
        async with self.client.post(self.url(path), data=orjson.dumps(value)) as response:
            return response.status, orjson.loads(await response.read())


@contextlib.asynccontextmanager
async def serve(
    routes: Mapping[str, type[Agent]] = TEST_ROUTES,
    mailbox_capacity: int = 1024,
    store: AgentStore | None = None,
    idle_timeout: float | None = None,
    **options: Any,
) -> AsyncIterator[Served]:
    """A plane running ``routes`` behind a WebServer on a free port, and a client session.

    ``store`` and ``idle_timeout`` go to the plane, the other ``options`` to the
    WebServer (``max_body_size``, ``stream_interval``, ...).
    """
    Valve.opened = asyncio.Event()
    Valve.entered = 0
    registry = MetricsRegistry()
    health = SettableHealth()
    options.setdefault("app_name", "towers")
    async with (
        open_plane(
            routes, mailbox_capacity=mailbox_capacity, store=store, idle_timeout=idle_timeout
        ) as plane,
        WebServer(
            plane, registry=registry, health=health, listen=("127.0.0.1", 0), **options
        ) as server,
        aiohttp.ClientSession() as client,
    ):
        yield Served(plane, server, client, registry, health)


ServeFactory = Callable[..., contextlib.AbstractAsyncContextManager[Served]]


def reading(temp: float, tower: str = "a", ts: int = 1) -> dict[str, Any]:
    """A reading command for a device of the towers example."""
    return {"temp": temp, "tower": tower, "ts": ts}


class EventReader:
    """Reads Server-Sent Events off a streaming response, skipping comment lines."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._content = response.content
        self.comments: list[str] = []

    async def next(self, timeout: float = 5.0) -> tuple[str, Any]:
        """The next event as ``(name, decoded JSON data)``; EOFError when the stream ended."""
        async with asyncio.timeout(timeout):
            name, data = "message", list[str]()
            while True:
                raw = await self._content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\n")
                if not line:
                    if data:
                        return name, orjson.loads("\n".join(data))
                    name = "message"
                    continue
                if line.startswith(":"):
                    self.comments.append(line)
                    continue
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if key == "event":
                    name = value
                elif key == "data":
                    data.append(value)


def request_head(method: str, path: str, body: bytes, coding: str | None = "gzip") -> bytes:
    """A keep-alive request's line and headers, announcing ``body`` coded as ``coding``."""
    lines = [f"{method} {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}"]
    if coding:
        lines.append(f"Content-Encoding: {coding}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer_of(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status and headers of one answer off a raw connection (its body read)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head.decode().strip().split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status.split()[1]), headers
