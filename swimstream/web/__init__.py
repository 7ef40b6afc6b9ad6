"""The web port of an instance: lanes over HTTP, live lane streams, probes, the dashboard.

SwimOS's HTTP-lane convention on one aiohttp server: ``GET /<node uri>?lane=<lane>``
answers the lane as JSON, ``POST`` to the same URL sends the body as a command, and the
same GET with ``Accept: text/event-stream`` streams the lane live (Server-Sent Events,
for curl users), and ``/_streams`` streams many lanes on one connection, the way a
browser tab wants them. ``/healthz``, ``/readyz`` and ``/metrics`` serve orchestrators
and Prometheus; ``/`` is a dashboard page that lists agents and shows their lanes
changing.

The web layer plugs into the runtime through the plane's public surface only
(``get``, ``submit``, ``link``/``unlink``, ``call``, ``describe_routes``,
``statistics``), and into the service through :class:`HealthProvider`, so it holds no
service logic::

    async with Plane(routes) as plane, WebServer(
        plane, registry=MetricsRegistry(), health=service, listen=("0.0.0.0", 9001)
    ) as web:
        print("dashboard at", web.url)
"""

from swimstream.web.health import HealthProvider, HealthReport
from swimstream.web.server import WebServer

__all__ = ["HealthProvider", "HealthReport", "WebServer"]
