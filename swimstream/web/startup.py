"""The web port while an instance starts: probes that say what it is waiting for.

Starting can take long: the broker may not answer yet, and restoring a large store from
its changelog takes minutes. An orchestrator that probes a port nobody listens on reads
a dead process: Kubernetes' liveness probe would restart the instance in the middle of
its restore, again and again. So the port opens at once with :class:`StartingServer`:
``/healthz`` answers 200 (alive, starting), ``/readyz`` 503 naming the current step,
``/metrics`` the registry as it stands (a scrape during a long start is not a gap), and
every other path 503 with ``Retry-After``. The full :class:`~swimstream.web.WebServer`
takes the same port over once the plane exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from swimstream.web import request_log
from swimstream.web.health import prometheus_response
from swimstream.web.shared import WebSettings, error_response, json_response, listen_on
from swimstream.web.sse import stalled_after

if TYPE_CHECKING:
    from swimstream.metrics import MetricsRegistry

log = logging.getLogger("swimstream.web")

RETRY_AFTER = "1"
"""Seconds a client is asked to wait before asking a starting instance again."""

HANDOVER_TIMEOUT = 1.0
"""Seconds a probe in flight gets to finish when the full server takes the port over."""


class StartingServer:
    """Probes on the web port until the instance serves; set :attr:`step` as it goes.

    ``listen`` is ``(host, port)``; port 0 picks a free port, which :attr:`port` tells
    so that the full server can bind the same one. ``heartbeat_interval`` is the full
    server's: a connection must send a whole request head within the same deadline
    (see :mod:`~.server`), or a client sending nothing held sockets while the start,
    a restore perhaps, lasts.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        registry: MetricsRegistry,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_interval: float = 15.0,
    ) -> None:
        self.listen = listen
        self.heartbeat_interval = heartbeat_interval
        self.registry = registry
        self._clock = clock
        self._step = "starting"
        self._since: float | None = None
        self._reason = ""
        self._runner: web.AppRunner | None = None
        self._log_filter: request_log.MalformedRequests | None = None
        self._port: int | None = None

    @property
    def step(self) -> str:
        """What the start is doing, as the probes say it; a wait (:meth:`set_waiting`)
        with the time it has lasted, counted when asked."""
        if self._since is None:
            return self._step
        waited = self._clock() - self._since
        return f"{self._step} ({waited:.0f} s so far): {self._reason}"

    @step.setter
    def step(self, text: str) -> None:
        self._step, self._since, self._reason = text, None, ""

    def set_waiting(self, what: str, since: float, reason: str) -> None:
        """Say the start is waiting, since ``since`` (on the clock given, monotonic by
        default), for ``reason``: each probe counts the seconds anew (they stood still
        at the last failed try, which may be 10 s old)."""
        self._step, self._since, self._reason = what, since, reason

    @property
    def port(self) -> int:
        """The port bound (known once started)."""
        if self._port is None:
            raise RuntimeError("the start-up probes are not started")
        return self._port

    async def start(self) -> None:
        self._log_filter = request_log.install()
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_route("*", "/{path:.*}", self._starting)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            auto_decompress=False,  # (it reads no body: see ``body_coding``)
            shutdown_timeout=HANDOVER_TIMEOUT,
            keepalive_timeout=stalled_after(
                WebSettings(heartbeat_interval=self.heartbeat_interval)
            ),
        )
        await runner.setup()
        self._runner = runner
        try:
            await listen_on(runner, self.listen[0], self.listen[1])
        except BaseException:
            await self.stop()
            raise
        self._port = int(runner.addresses[0][1])
        log.info(
            "web port %s:%d answers probes while the instance starts", self.listen[0], self._port
        )

    async def release_port(self) -> None:
        """Stop listening, but let requests in flight finish (until :meth:`stop`): the
        full server binds the port next, a moment later rather than after them.
        (Closing the whole server first left the port closed for about a second, as
        its shutdown waited for the connections clients kept alive.)"""
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()

    async def stop(self) -> None:
        """Stop answering; the port is released (the full server binds it next)."""
        runner, self._runner = self._runner, None
        log_filter, self._log_filter = self._log_filter, None
        if runner is not None:
            await runner.cleanup()
        if log_filter is not None:
            request_log.uninstall(log_filter)

    async def _healthz(self, _request: web.Request) -> web.Response:
        return json_response({"ok": True, "checks": {"start": self.step}})

    async def _readyz(self, _request: web.Request) -> web.Response:
        return json_response({"ok": False, "checks": {"start": self.step}}, status=503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return prometheus_response(self.registry)

    async def _starting(self, _request: web.Request) -> web.Response:
        response = error_response(503, f"the instance is starting: {self.step}")
        response.headers["Retry-After"] = RETRY_AFTER
        return response
