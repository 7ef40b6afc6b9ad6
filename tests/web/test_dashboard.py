"""The dashboard page and its JSON: routes, pages of active agents, live statistics."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any
from urllib.parse import quote

from swimstream import Agent, CommandLane
from swimstream.web.dashboard import SCAN_LIMIT
from tests.web.harness import TEST_ROUTES, Served, ServeFactory, reading


class Watcher(Agent):
    """Holds one link (to a tower's summary) and one timer, for counting them."""

    watch = CommandLane[str]()
    forget = CommandLane[None]()

    @watch.on_command
    def on_watch(self, tower: str) -> None:
        self.summary = self.downlink(f"/tower/{tower}", "summary")
        self.timer = self.schedule(3600.0, self.look)

    @forget.on_command
    def on_forget(self, _: None) -> None:
        self.summary.close()
        self.timer.cancel()

    def look(self) -> None:
        pass


def lines_run(call: Callable[[], object]) -> int:
    """How many lines of Python ``call`` runs: its work, measured without a clock."""
    count = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        count += event == "line"
        return trace

    before = sys.gettrace()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(before)
    return count


async def test_the_page_is_served_self_contained_at_root_and_dashboard(served: Served) -> None:
    for path in ("/", "/dashboard"):
        async with served.client.get(served.url(path)) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            page = await response.text()
        assert "<title>swimstream</title>" in page
        assert "EventSource" in page  # lanes are live over SSE
        assert "http://" not in page and "https://" not in page  # nothing from a CDN


async def test_routes_lists_every_route_with_its_agent_and_lane_kinds(served: Served) -> None:
    status, body = await served.get_json("/_routes")
    assert status == 200 and body["app"] == "towers"
    by_route = {route["route"]: route for route in body["routes"]}
    assert by_route["/device/:id"] == {
        "route": "/device/:id",
        "agent": "Device",
        "lanes": {"status": "value", "history": "map", "readings": "counter", "reading": "command"},
    }
    assert by_route["/tower/:id"]["lanes"]["devices"] == "join_value"
    assert "/world" in by_route


async def test_agents_pages_through_the_active_agents_of_a_route(served: Served) -> None:
    for n in range(250):
        served.plane.submit(f"/device/{n}", "reading", reading(50.0, f"t{n % 3}", n))
    await served.plane.settle()

    status, first = await served.get_json("/_agents?route=/device/:id")
    assert status == 200
    assert len(first["agents"]) == 100 and first["more"] is True
    assert first["active"] == 250 + 3 + 1  # the devices, three towers, the world
    assert first["agents"][0] == "/device/249"  # most recent first
    _, second = await served.get_json(f"/_agents?route=/device/:id&offset={first['next']}")
    _, third = await served.get_json(f"/_agents?route=/device/:id&offset={second['next']}")
    assert third["more"] is False and third["next"] == 250 + 3 + 1
    every = first["agents"] + second["agents"] + third["agents"]
    assert sorted(every) == sorted(f"/device/{n}" for n in range(250))

    _, towers = await served.get_json("/_agents?route=/tower/:id")
    assert sorted(towers["agents"]) == ["/tower/t0", "/tower/t1", "/tower/t2"]
    _, found = await served.get_json("/_agents?route=/device/:id&q=/device/24")
    assert sorted(found["agents"]) == ["/device/24", *(f"/device/24{d}" for d in range(10))]


async def test_a_page_looks_at_a_bounded_slice_of_the_agents_and_says_where_to_go_on(
    served: Served,
) -> None:
    """A route few agents match (the world among many devices) scanned every agent in
    memory on each request: 0.6 s of blocked event loop with 200,000 agents, every 5 s
    while a dashboard showed that route. Now one request looks at SCAN_LIMIT at most."""
    served.plane.agent("/world")  # the least recent of all
    for n in range(SCAN_LIMIT + 10):
        served.plane.agent(f"/valve/{n}")
    await served.plane.settle()

    status, first = await served.get_json("/_agents?route=/world")
    assert status == 200
    assert first["agents"] == [] and first["more"] is True
    assert first["next"] == SCAN_LIMIT
    _, second = await served.get_json(f"/_agents?route=/world&offset={first['next']}")
    assert second["agents"] == ["/world"] and second["more"] is False
    assert second["next"] == SCAN_LIMIT + 11

    _, devices = await served.get_json("/_agents?q=/valve/1&limit=1000")  # 1, 10-19, 100-199...
    assert len(devices["agents"]) == 1000 and devices["more"] is True
    assert devices["next"] < SCAN_LIMIT  # stopped at a full page, not at the scan limit


async def test_the_agent_filter_finds_ids_that_routing_percent_encoded(served: Served) -> None:
    """Node URIs hold ``é`` and spaces percent-encoded; a user types them as they read."""
    for n, device in enumerate(["caf%C3%A9", "a%20b", "plain"]):
        served.plane.submit(f"/device/{device}", "reading", reading(50.0, "t0", n))
    await served.plane.settle()
    for typed, found in [("é", "/device/caf%C3%A9"), ("a b", "/device/a%20b"), ("%C3", None)]:
        _, body = await served.get_json(f"/_agents?route=/device/:id&q={quote(typed)}")
        assert body["agents"] == ([found] if found else ["/device/caf%C3%A9"]), typed


async def test_agents_rejects_unknown_routes_and_bad_limits(served: Served) -> None:
    status, body = await served.get_json("/_agents?route=/nope/:id")
    assert status == 404 and "/device/:id" in body["routes"]
    status, body = await served.get_json("/_agents?route=/device/:id&limit=5000")
    assert status == 400 and "limit" in body["error"]
    status, body = await served.get_json("/_agents?limit=ten")
    assert status == 400


async def test_stats_reports_the_plane_counters(serve: ServeFactory) -> None:
    before = time.monotonic()
    async with serve() as served:
        await served.post_json("/device/1?lane=reading", reading(70.0))
        await served.plane.settle()
        await asyncio.sleep(0.2)
        status, body = await served.get_json("/_stats")
        after = time.monotonic()
    assert status == 200
    assert body["app"] == "towers"
    assert body["active_agents"] == 3 and body["links"] == 2
    assert body["messages_handled"] >= 3 and body["streams_open"] == 0
    # The seconds since this server started (to the millisecond): at least the sleep,
    # at most the whole test.
    assert 0.2 - 0.0005 <= body["uptime"] <= after - before + 0.0005, (body, after - before)


async def test_the_stats_a_dashboard_polls_every_second_do_not_walk_every_link_and_timer(
    serve: ServeFactory,
) -> None:
    """Counting links and timers summed them agent by agent: /_stats took 43 ms with
    200,000 links, once a second for each open dashboard."""
    async with serve({**TEST_ROUTES, "/watcher/:id": Watcher}) as served:
        for n in range(10):
            served.plane.submit(f"/watcher/{n}", "watch", "a")
        await served.plane.settle()
        few = lines_run(served.plane.statistics)
        for n in range(10, 1010):
            served.plane.submit(f"/watcher/{n}", "watch", "a")
        await served.plane.settle()
        _, body = await served.get_json("/_stats")
        assert body["links"] == 1010 + 1  # and the tower's own link to the world
        assert body["timers"] == 1010
        assert lines_run(served.plane.statistics) == few
        for n in range(1000):
            served.plane.submit(f"/watcher/{n}", "forget", None)
        await served.plane.settle()
        _, body = await served.get_json("/_stats")
        assert (body["links"], body["timers"]) == (10 + 1, 10)
