"""The dashboard page and the small JSON endpoints it reads.

The page is one self-contained HTML file (vanilla JS, no CDN: instances often run
where the internet is not) shipped as package data in ``swimstream/web/static``. It
reads three endpoints, all cheap enough for a plane with a million agents:

* ``GET /_routes``: ``{"app", "routes": [{"route", "agent", "lanes": {name: kind}}]}``.
* ``GET /_agents?route=<pattern>&q=<substring>&offset=<n>&limit=<n>``: the node URIs of
  agents in memory that ``route`` resolves, most recently active first (activation
  order when the plane does not passivate), ``limit`` at most :data:`MAX_LIMIT`:
  ``{"route", "agents": [...], "offset", "next", "limit", "more": bool, "active": n}``.
  ``offset`` and ``next`` are positions in that order (agents looked at, matching or
  not), so the next page starts where this one stopped without scanning again. One
  request looks at :data:`SCAN_LIMIT` agents at most: a route or filter that few agents
  match (a world agent among a million devices) would otherwise scan the whole plane,
  blocking the event loop for seconds, every time the page refreshes. A page may
  therefore hold fewer than ``limit`` agents, even none, with ``more`` true: ``more``
  tells that agents after ``next`` remain to be looked at (not that one of them
  matches: finding out could take that same whole scan).
* ``GET /_stats``: the plane's statistics plus the web port's open streams and uptime;
  the page polls it once a second to show throughput. Lanes themselves are live over
  SSE, one multiplexed stream per tab (:mod:`swimstream.web.multiplex`), never polled.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from importlib import resources
from urllib.parse import unquote

from aiohttp import web

from swimstream.web.shared import error_response, json_response, state_of

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SCAN_LIMIT = 10_000
"""Most agents one ``/_agents`` request looks at: milliseconds, whatever the filter."""


def load_page() -> bytes:
    """The dashboard HTML, read from the package data."""
    return resources.files("swimstream.web").joinpath("static/dashboard.html").read_bytes()


PAGE = web.AppKey("swimstream_web_page", bytes)


async def page(request: web.Request) -> web.Response:
    """``GET /`` and ``GET /dashboard``: the page itself."""
    return web.Response(
        body=request.app[PAGE],
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


async def routes(request: web.Request) -> web.Response:
    """``GET /_routes``: every route pattern with its agent class and lanes."""
    state = state_of(request)
    described = [
        {"route": route.pattern, "agent": route.agent, "lanes": route.lanes}
        for route in state.routes.values()
    ]
    return json_response({"app": state.settings.app_name, "routes": described})


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"query parameter {name!r} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"query parameter {name!r} must be between {low} and {high}")
    return value


async def agents(request: web.Request) -> web.Response:
    """``GET /_agents?route=...``: one page of the active agents of a route."""
    state = state_of(request)
    route = request.query.get("route")
    if route is not None and route not in state.routes:
        return error_response(404, f"no route {route!r}", routes=sorted(state.routes))
    try:
        offset = _int_param(request, "offset", 0, 0, 1 << 62)
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    except ValueError as exc:
        return error_response(400, str(exc))
    needle = request.query.get("q", "")
    table = state.table
    page_uris: list[str] = []
    position = offset
    more = False
    node_uris = state.plane.active_node_uris()
    # most recently used last in the plane's order; skipping is cheap, looking up is not
    for node_uri in itertools.islice(reversed(node_uris), offset, None):
        if len(page_uris) == limit or position - offset == SCAN_LIMIT:
            more = True
            break
        position += 1
        if needle and not _matches(needle, node_uri):
            continue
        if route is not None:
            found = table.lookup(node_uri)
            if found is None or found.target != route:
                continue
        page_uris.append(node_uri)
    body = {
        "route": route,
        "agents": page_uris,
        "offset": offset,
        "next": position,
        "limit": limit,
        "more": more,
        "active": len(node_uris),
    }
    return json_response(body)


async def stats(request: web.Request) -> web.Response:
    """``GET /_stats``: the plane's counters, for the dashboard's live numbers."""
    state = state_of(request)
    body = dataclasses.asdict(state.plane.statistics())
    body["streams_open"] = len(state.open_streams)
    body["uptime"] = round(time.monotonic() - state.started, 3)
    body["app"] = state.settings.app_name
    return json_response(body)


def _matches(needle: str, node_uri: str) -> bool:
    """Whether a user's filter text is in a node URI, as stored (percent-encoded) or as
    read (``é``, ``a b``: what a user types for an id that routing had to encode)."""
    return needle in node_uri or ("%" in node_uri and needle in unquote(node_uri))
