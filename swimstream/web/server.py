"""The web port: one aiohttp server for lanes, streams, probes, metrics and the dashboard.

:class:`WebServer` only wires endpoints to a plane; each endpoint lives in the module
of its concern. Paths are taken in this order, so the fixed ones
(:class:`~swimstream.routing.ServerPath`, which the configuration refuses as agent
routes) are reserved and can never name an agent:

==========================  =====================================================
``/`` and ``/dashboard``    the dashboard page (:mod:`swimstream.web.dashboard`)
``/_routes`` ``/_agents``   its JSON (same module)
``/_stats``
``/_streams``               one stream for many lanes (:mod:`~.multiplex`)
``/healthz`` ``/readyz``    probes, ``/metrics`` Prometheus (:mod:`~.health`)
``/metrics``
anything else               a node URI: ``GET``/``POST ?lane=`` (:mod:`~.lanes`)
==========================  =====================================================

Every error answers JSON ``{"error": "..."}``, including aiohttp's own (405, 413), but
for a failure after a handler began its own answer (a stream): its connection is closed
instead, since a second answer would be written into the first one's body. An
answer whose request body will end the connection says so (:mod:`~.keep_alive`).
Handlers are cancelled when their client disconnects, which is what ends an SSE stream
whose client left. A client that stops reading does not disconnect: an answer it has not
taken within the time a stream's write gets (:data:`~.sse.STALLED_WRITE_HEARTBEATS`
heartbeat intervals) drops its connection, as a stream does (:func:`_send`). A client
that sends too little is dropped in that same time: a connection whose request head
(request line and headers) has not come whole within it of the connection's start or of
its previous answer is closed. Without that deadline (aiohttp sets none on the head, and
keeps an idle connection an hour) a client trickling its headers a byte at a time, or
opening connections and sending nothing, held them for good: a few thousand such held
every socket the process may open. On exit the
server ends every stream and refuses to wait for commands, then stops listening, so no
task of the server outlives it.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.typedefs import Handler

from swimstream.routing import ServerPath
from swimstream.web import dashboard, health, keep_alive, lanes, multiplex, request_log
from swimstream.web.shared import (
    STATE,
    Placement,
    WebSettings,
    WebState,
    error_response,
    listen_on,
)
from swimstream.web.sse import stalled_after
from swimstream.web.taken import taken_within

if TYPE_CHECKING:
    from swimstream.metrics import MetricsRegistry
    from swimstream.runtime import Plane
    from swimstream.web.health import HealthProvider

log = logging.getLogger("swimstream.web")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

SHUTDOWN_TIMEOUT = 5.0
"""Seconds in-flight requests get to finish when the server stops."""

_STARTED = web.RequestKey("swimstream_started_response", web.StreamResponse)
"""The response a handler prepared (began to send) itself, as an SSE stream does."""


async def _remember_started(request: web.Request, response: web.StreamResponse) -> None:
    request[_STARTED] = response


async def _get_only(request: web.Request) -> web.Response:
    response = error_response(405, f"{request.path} answers GET only")
    response.headers["Allow"] = "GET, HEAD"
    return response


async def _get_or_post_only(request: web.Request) -> web.Response:
    response = error_response(405, f"{request.path} answers GET and POST only")
    response.headers["Allow"] = "GET, HEAD, POST"
    return response


async def _continue(request: web.Request) -> None:
    """``Expect: 100-continue`` on a route that reads the body (a POST): "100 Continue"
    unless the body is over ``max_body_size``, whose 413 the handler answers instead.
    aiohttp asked for every body, so a client that waits to be asked (curl, before a
    large one) sent megabytes only to read a refusal its headers had earned. Any other
    expectation is ignored (RFC 9110 allows it) rather than a 417 outside the JSON errors.
    An answer to a client not asked ends its connection (:mod:`~.keep_alive`)."""
    if request.version != HttpVersion11:
        return
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        return
    limit = request.app[STATE].settings.max_body_size
    if request.content_length is not None and request.content_length > limit:
        return
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # (as aiohttp's own: the answer has not begun)
    request[keep_alive.ASKED_FOR_BODY] = True


async def _read_no_body(request: web.Request) -> None:
    """``Expect`` on a route that reads no body (GET, a 405): nothing to ask for, and
    the answer comes at once."""


class WebServer:
    """Serves a plane over HTTP on one port; an async context manager.

    ``listen`` is ``(host, port)``; port 0 picks a free port, which :attr:`port` and
    :attr:`url` tell once the server started. ``registry`` receives the plane's
    statistics as gauges; ``health`` answers the probes. The rest tune the port:
    the app name the dashboard shows, the largest command body, how long a POST waits
    for its command's callback, a stream's heartbeat and minimum flush interval, and
    how many streams may be open at once. ``placement`` says which agents this
    instance serves (another instance holds the others' shards); all, without it.
    """

    def __init__(
        self,
        plane: Plane,
        *,
        registry: MetricsRegistry,
        health: HealthProvider,
        listen: tuple[str, int],
        app_name: str = "swimstream",
        max_body_size: int = 1 << 20,
        command_timeout: float = 30.0,
        heartbeat_interval: float = 15.0,
        stream_interval: float = 0.05,
        max_streams: int = 1000,
        placement: Placement | None = None,
    ) -> None:
        self.plane = plane
        self.placement = placement
        self.registry = registry
        self.health = health
        self.listen = listen
        self.settings = WebSettings(
            app_name=app_name,
            max_body_size=max_body_size,
            command_timeout=command_timeout,
            heartbeat_interval=heartbeat_interval,
            stream_interval=stream_interval,
            max_streams=max_streams,
        )
        self._runner: web.AppRunner | None = None
        self._state: WebState | None = None
        self._gate: lanes.MailboxGate | None = None
        self._log_filter: request_log.MalformedRequests | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the web server is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` to reach the server; a wildcard host reads as loopback."""
        host = self.listen[0]
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> WebServer:
        state = WebState(
            self.plane, self.registry, self.health, self.settings, started=time.monotonic()
        )
        if self.placement is not None:
            state.placement = self.placement
        self._state = state
        self._log_filter = request_log.install()
        self._gate = lanes.MailboxGate(self.plane)
        health.register_gauges(self.registry, self.plane, lambda: len(state.open_streams))
        app = self._build_app(state, self._gate)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            handler_cancellation=True,
            access_log=None,
            auto_decompress=False,  # bodies are decoded as read, within the limit (body_coding)
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            # The deadline of a request's head, counted from the connection's start or
            # its previous answer (aiohttp's keep-alive timer closes a connection still
            # waiting for a whole head then; none runs while a handler does, a stream's).
            keepalive_timeout=stalled_after(self.settings),
        )
        await runner.setup()
        self._runner = runner
        try:
            await listen_on(runner, self.listen[0], self.listen[1])
        except BaseException:
            await self._stop()
            raise
        address = runner.addresses[0]
        self._port = int(address[1])
        log.info("web port listening on %s", self.url, extra={"url": self.url})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        state, runner, gate = self._state, self._runner, self._gate
        log_filter, self._log_filter = self._log_filter, None
        self._runner = None
        if state is not None and not state.stopping.done():
            state.stopping.set_result(None)
            for stream in [*state.open_streams, *state.multiplexed.values()]:
                stream.stop()
        if runner is not None:
            await runner.cleanup()
        if gate is not None:
            await gate.close()
        if log_filter is not None:
            request_log.uninstall(log_filter)

    def _build_app(self, state: WebState, gate: lanes.MailboxGate) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.max_body_size, middlewares=[self._errors]
        )
        app.on_response_prepare.append(keep_alive.close_if_body_unskippable)
        app.on_response_prepare.append(_remember_started)
        app[STATE] = state
        app[lanes.GATE] = gate
        app[dashboard.PAGE] = dashboard.load_page()
        # Keyed by ServerPath, the list the configuration refuses agent routes from: a
        # path served here but missing there would let an agent be unreachable.
        own: dict[ServerPath, Handler] = {
            ServerPath.ROOT: dashboard.page,
            ServerPath.DASHBOARD: dashboard.page,
            ServerPath.ROUTES: dashboard.routes,
            ServerPath.AGENTS: dashboard.agents,
            ServerPath.STATS: dashboard.stats,
            ServerPath.HEALTHZ: health.healthz,
            ServerPath.READYZ: health.readyz,
            ServerPath.METRICS: health.metrics,
        }
        router = app.router
        # A multiplexed stream (GET) and the changes of its lanes (POST) share a path.
        streams = ServerPath.STREAMS.value
        router.add_get(streams, multiplex.open_stream, expect_handler=_read_no_body)
        router.add_post(streams, multiplex.change_links, expect_handler=_continue)
        router.add_route("*", streams, _get_or_post_only, expect_handler=_read_no_body)
        # A command may name its node in the query at the root (lanes._node_path).
        router.add_post(ServerPath.ROOT.value, lanes.post_command_at_root, expect_handler=_continue)
        for path, handler in own.items():
            router.add_get(path.value, handler, expect_handler=_read_no_body)
            # The server's own paths are not node URIs: a POST there is 405, not a
            # 404 saying no agent route matches.
            router.add_route("*", path.value, _get_only, expect_handler=_read_no_body)
        router.add_get("/{node:.+}", lanes.get_lane, expect_handler=_read_no_body)
        router.add_post("/{node:.+}", lanes.post_command, expect_handler=_continue)
        router.add_route("*", "/{node:.+}", _get_or_post_only, expect_handler=_read_no_body)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer every failure as JSON and count every answer by method and status."""
        try:
            if request.method == "POST" and request.headers.get(_FETCH_SITE) in _OTHER_SITES:
                raise web.HTTPForbidden(reason=_CROSS_SITE)
            response = await handler(request)
        except web.HTTPException as exc:
            response = error_response(exc.status, exc.reason)
            for header in ("Allow", "Retry-After"):
                if header in exc.headers:
                    response.headers[header] = exc.headers[header]
        except Exception:
            started = request.get(_STARTED)
            if started is None:
                log.exception("the web port failed on %s %s", request.method, request.path)
                response = error_response(500, "internal error; see the server log")
            else:
                # Its status line and part of its body went out: a 500 now would be
                # written into that body. Closing the connection instead tells the
                # client the body is incomplete (an EventSource reconnects).
                log.exception(
                    "the web port failed on %s %s after its answer started; connection closed",
                    request.method,
                    request.path,
                )
                if request.transport is not None:
                    request.transport.close()
                response = started
        self.registry.counter(
            "web_responses",
            "HTTP responses of the web port, by method and status code.",
            method=request.method if request.method in _METHODS else "other",
            code=str(response.status),
        ).inc()
        if not response.prepared:
            await _send(request, response, self.settings)
        return response


_FETCH_SITE = "Sec-Fetch-Site"
_OTHER_SITES = frozenset({"cross-site", "same-site"})
_CROSS_SITE = (
    "a POST from another site's page is refused (Sec-Fetch-Site): commands come from this "
    "server's own pages, curl, or a client that is no browser"
)
"""A page of another site could otherwise send commands through the browser of anyone
who can reach this port (a form or ``fetch`` posting ``text/plain`` needs no CORS
preflight, and a POST takes any content type): the browser says where a request comes
from, and only this origin's pages (the dashboard) and requests no page made (``none``,
or no header: curl, another service) may command. Reads need no such check: without CORS
headers a page of another origin cannot read the answer."""


async def _send(request: web.Request, response: web.StreamResponse, settings: WebSettings) -> None:
    """Write ``response`` here rather than leave it to aiohttp, whose write waits for the
    client without end: a client that asks for a large lane and never reads held its
    connection, its handler and the whole body in memory for as long as it kept the
    connection open, hours, and a few such clients held gigabytes. An answer not taken
    within the time a stream's write gets drops the connection, with one log line, as
    :mod:`~.sse` drops a stream's stalled client. (aiohttp's own prepare and write that
    follow find the answer sent, or the connection gone.)"""
    stalled = stalled_after(settings)
    try:
        await taken_within(request.transport, stalled, _prepare_and_end(request, response))
    except TimeoutError:
        log.info(
            "the client of %s %s had not taken its answer after %g s (it stopped "
            "reading); connection dropped",
            request.method,
            request.path,
            stalled,
        )
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:
        pass  # the client left: aiohttp ends the request as it does for any


async def _prepare_and_end(request: web.Request, response: web.StreamResponse) -> None:
    """Send ``response`` whole: the write :func:`_send` times by its client's progress."""
    await response.prepare(request)
    await response.write_eof()
