"""Health, readiness and metrics: what orchestrators and Prometheus ask the web port.

The server knows nothing of what makes an instance healthy: brokers, shard ownership
and checkpoints belong to the service. It asks a :class:`HealthProvider` and turns the
answer into a status code, so Kubernetes-style probes and humans read the same JSON:

* ``/healthz`` (liveness: restart me if red) and ``/readyz`` (readiness: send me
  traffic) answer 200 when the report is ok and 503 otherwise, with
  ``{"ok": bool, "checks": {name: detail}}``. A provider that raises counts as red.
* ``/metrics`` renders the registry in the Prometheus text format, after the plane's
  statistics have been registered as gauges at server start (:func:`register_gauges`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from swimstream.web.shared import json_response, state_of

if TYPE_CHECKING:
    from swimstream.metrics import MetricsRegistry
    from swimstream.runtime import Plane, PlaneStatistics

log = logging.getLogger("swimstream.web")

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STATISTICS_TTL = 1.0
"""Seconds one read of the plane's statistics serves the gauges: counting links walks
every linked agent, so one scrape should count once, not once per gauge."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One answer of a health provider: ``ok`` and a detail line per named check."""

    ok: bool
    checks: Mapping[str, str] = field(default_factory=dict)


class HealthProvider(Protocol):
    """What the service tells the web port about itself (implemented by the service)."""

    def health(self) -> HealthReport:
        """Liveness: False when the instance is broken and should be restarted."""
        ...

    def readiness(self) -> HealthReport:
        """Readiness: False while the instance should not get traffic (starting, draining)."""
        ...


def _answer(ask: Callable[[], HealthReport], what: str) -> web.Response:
    try:
        report = ask()
    except Exception as exc:
        log.exception("the %s provider raised", what)
        report = HealthReport(
            False, {"provider": f"{what} check raised {type(exc).__name__}: {exc}"}
        )
    body = {"ok": report.ok, "checks": dict(report.checks)}
    return json_response(body, status=200 if report.ok else 503)


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 when the provider says healthy, else 503."""
    return _answer(state_of(request).health.health, "health")


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 when the provider says ready, else 503."""
    return _answer(state_of(request).health.readiness, "readiness")


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the registry in the Prometheus text format, version 0.0.4."""
    return prometheus_response(state_of(request).registry)


def prometheus_response(registry: MetricsRegistry) -> web.Response:
    """The registry as Prometheus text (also served while the instance starts)."""
    return web.Response(body=registry.render().encode(), headers={"Content-Type": PROMETHEUS_TYPE})


class _CachedStatistics:
    """The plane's statistics, read at most once per :data:`STATISTICS_TTL`."""

    def __init__(self, plane: Plane) -> None:
        self._plane = plane
        self._read_at = -STATISTICS_TTL
        self._statistics: PlaneStatistics | None = None

    def field(self, name: str) -> Callable[[], float]:
        def read() -> float:
            now = time.monotonic()
            if self._statistics is None or now - self._read_at >= STATISTICS_TTL:
                self._statistics = self._plane.statistics()
                self._read_at = now
            value: float = getattr(self._statistics, name)
            return value

        return read


PLANE_GAUGES = {
    "active_agents": "Agents in memory.",
    "stored_agents": "Agents held in the agent store (durable: as last counted, at most 30 s old).",
    "links": "Open links to lanes (agent downlinks and outside subscribers).",
    "timers": "Pending agent timers.",
}
"""PlaneStatistics field -> help text; each becomes the gauge ``plane_<field>``."""

PLANE_COUNTERS = {
    "messages_handled": "Mailbox messages handled since the plane started.",
    "commands": (
        "Commands queued to agents' lanes: HTTP POSTs, source records routed to command lanes, "
        "and commands agents send."
    ),
    "callback_failures": "Agent callbacks that raised since the plane started.",
    "activations": "Agents created or reloaded since the plane started.",
    "passivations": "Agents unloaded into the store since the plane started.",
}
"""PlaneStatistics field -> help text; each becomes the counter ``plane_<field>_total``."""


def register_gauges(
    registry: MetricsRegistry, plane: Plane, open_streams: Callable[[], int]
) -> None:
    """Register the plane's statistics and the open SSE streams."""
    statistics = _CachedStatistics(plane)
    for name, help_text in PLANE_GAUGES.items():
        registry.gauge(f"plane_{name}", help_text, statistics.field(name))
    for name, help_text in PLANE_COUNTERS.items():
        registry.counted(f"plane_{name}", help_text, statistics.field(name))
    registry.gauge("web_streams_open", "Open lane streams (SSE) on the web port.", open_streams)
