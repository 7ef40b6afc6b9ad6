"""The paths the web port answers itself, which no agent's node URI can be reached at.

The web server serves an agent's lanes at ``/<node uri>?lane=<lane>``, but it matches
its own pages and probes first: an agent whose static route is ``/metrics`` exists, yet
no HTTP request reaches it. The list lives here, below both the web server (which
serves exactly these paths) and the configuration (which refuses them as agent routes),
so the two cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum


class ServerPath(StrEnum):
    """A path of the web server's own; the value is the path as it is requested."""

    ROOT = "/"
    DASHBOARD = "/dashboard"
    ROUTES = "/_routes"
    AGENTS = "/_agents"
    STATS = "/_stats"
    STREAMS = "/_streams"
    HEALTHZ = "/healthz"
    READYZ = "/readyz"
    METRICS = "/metrics"


def server_path_list() -> str:
    """The server's own paths as a readable list, for messages and documentation."""
    return ", ".join(f"`{path.value}`" for path in ServerPath)
