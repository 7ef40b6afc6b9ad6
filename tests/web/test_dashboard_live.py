"""The dashboard's lanes in a real headless chromium: staying right, and staying live.

What the page shows of a lane must be what ``GET`` of that lane answers, after any
changes, whatever the keys; and a stream the browser gave up on must come back.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route

from swimstream import Agent, CommandLane, MapLane, ValueLane
from swimstream.metrics import MetricsRegistry
from swimstream.testing import open_plane
from swimstream.web import WebServer, dashboard
from tests.web.browser import CHROMIUM, first_page, open_chromium, populate_towers, watch_errors
from tests.web.harness import ServeFactory, SettableHealth

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run scripts/ensure-chromium"
)


class Shelf(Agent):
    """A map whose keys are whatever JSON scalars commands bring, and a value."""

    items = MapLane[Any, Any]()
    label = ValueLane[Any](default=None)
    nest = CommandLane[int]()
    fill = CommandLane[list[int]]()

    @fill.on_command
    def on_fill(self, span: list[int]) -> None:
        for n in range(*span):
            self.items.put(f"key-{n:05d}", n)

    @nest.on_command
    def on_nest(self, depth: int) -> None:
        nested: list[Any] = []
        for _ in range(depth):
            nested = [nested]
        self.label.set(nested)  # held in memory; orjson writes 254 levels at most


SHELF_ROUTES: dict[str, type[Agent]] = {"/shelf/:id": Shelf}


async def shown_keys(page: Page, lane: str) -> list[str]:
    """The keys a map lane's card shows, sorted."""
    return sorted(await page.locator(f'.card[data-lane="{lane}"] td.key').all_text_contents())


async def test_map_keys_changed_live_are_spelled_as_get_spells_them(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """A key the stream brings is the key GET shows: ``"__proto__"`` is an entry (not
    the state's prototype), a float key stays ``2.0`` (JSON.parse made it ``2``: one
    entry shown twice, and its remove deleted nothing), a 64-bit key keeps its digits."""
    async with serve(routes=SHELF_ROUTES) as served:
        assert (await served.post_json("/shelf/1?lane=items", {"update": 2.0, "value": 0}))[
            0
        ] == 200
        async with open_chromium(tmp_path / "profile") as context:
            page = await first_page(context)
            problems = watch_errors(page)
            await page.goto(served.server.url + "/")
            await page.locator('.agents li[data-node="/shelf/1"]').click()
            await page.locator('.card[data-lane="items"] .dot.live').wait_for()
            assert await shown_keys(page, "items") == ["2.0"]

            keys: list[Any] = ["__proto__", 2.0, 1e20, -0.0, 2**60 + 1, True, None, "a"]
            for key in keys:
                sent = await served.post_json("/shelf/1?lane=items", {"update": key, "value": 1})
                assert sent == (200, {"ok": True})
            status, state = await served.get_json("/shelf/1?lane=items")
            assert status == 200
            assert len(state) == 8
            card = page.locator('.card[data-lane="items"]')
            await card.locator(".hint", has_text="8 entries").wait_for()
            assert await shown_keys(page, "items") == sorted(state)

            for key in (2.0, "__proto__", 2**60 + 1):
                assert (await served.post_json("/shelf/1?lane=items", {"remove": key}))[0] == 200
            status, state = await served.get_json("/shelf/1?lane=items")
            assert len(state) == 5
            await card.locator(".hint", has_text="5 entries").wait_for()
            assert await shown_keys(page, "items") == sorted(state)
            assert not problems, problems


def web_server(plane: Any, port: int = 0, **options: Any) -> WebServer:
    """A WebServer for ``plane`` on ``port`` of loopback (0: a free one)."""
    return WebServer(
        plane,
        registry=MetricsRegistry(),
        health=SettableHealth(),
        listen=("127.0.0.1", port),
        **options,
    )


async def test_a_stream_refused_while_the_server_restarts_is_opened_again(
    tmp_path: Path,
) -> None:
    """A restarting instance answers 503 for a while (restoring shards, or
    ``web.max_streams`` open): EventSource gives up for good on any answer but a stream,
    and the card stayed on its old state with nothing but a yellow dot. It says so, tries
    again, and shows the lane's state once the server serves it."""
    async with open_plane(SHELF_ROUTES) as plane:
        await plane.command("/shelf/1", "label", "before")
        async with open_chromium(tmp_path / "profile") as context:
            page = await first_page(context)
            problems = watch_errors(page)
            label = page.locator('.card[data-lane="label"]')
            first = web_server(plane)
            async with first:
                port = first.port
                await page.goto(first.url + "/")
                await page.locator('.agents li[data-node="/shelf/1"]').click()
                await label.locator(".dot.live").wait_for()
                await label.locator(".big, pre, .card-body", has_text="before").first.wait_for()
            await plane.command("/shelf/1", "label", "after")
            async with web_server(plane, port, max_streams=0):  # every stream is a 503
                await label.locator(".problem", has_text="retrying").wait_for(timeout=10_000)
                assert await label.locator(".dot.wait").count() == 1
            async with web_server(plane, port):
                await label.locator(".dot.live").wait_for(timeout=20_000)
                await label.locator(".card-body", has_text="after").wait_for()
                assert await label.locator(".problem").is_hidden()
            # the browser's own log of the refused requests is expected; nothing else
            assert all("503" in p or "ERR_CONNECTION_REFUSED" in p for p in problems), problems


async def test_a_change_that_is_not_json_is_named_and_the_stream_stays_live(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """The server sends an ``error`` event for a change it cannot write as JSON and keeps
    the stream open; EventSource hands it to ``onerror`` like a lost connection, and the
    card turned yellow for good, saying nothing, while the stream went on."""
    async with serve(routes=SHELF_ROUTES) as served:
        await served.plane.command("/shelf/1", "label", "plain")
        async with open_chromium(tmp_path / "profile") as context:
            page = await first_page(context)
            await page.goto(served.server.url + "/")
            await page.locator('.agents li[data-node="/shelf/1"]').click()
            label = page.locator('.card[data-lane="label"]')
            await label.locator(".dot.live").wait_for()
            assert (await served.post_json("/shelf/1?lane=nest", 300))[0] == 200
            await label.locator(".problem", has_text="is not JSON").wait_for()
            assert await label.locator(".dot.live").count() == 1
            assert (await served.post_json("/shelf/1?lane=label", "fine again"))[0] == 200
            await label.locator(".card-body", has_text="fine again").wait_for()
            assert await label.locator(".dot.live").count() == 1


async def test_a_route_picked_while_another_route_is_scanned_lists_its_newest_agents(
    serve: ServeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route whose agents are not among the newest (the devices, behind the world and
    the towers) takes one request per scan slice. Picking another route meanwhile: the
    older scan went on, under the new route and from its own offset, and replaced the
    list with agents past the newest ones (here none: "no agent ... in memory yet")."""
    monkeypatch.setattr(dashboard, "SCAN_LIMIT", 2)  # the devices take several requests
    async with serve() as served:
        await populate_towers(served.plane, devices=12, towers=3)
        offset, newest = 0, {"agents": [], "more": True}
        while not newest["agents"] and newest["more"]:  # as the page scans
            path = f"/_agents?route=%2Ftower%2F%3Aid&offset={offset}&limit=100"
            status, newest = await served.get_json(path)
            assert status == 200
            offset = newest["next"]
        assert newest["agents"]
        async with open_chromium(tmp_path / "profile") as context:
            page = await first_page(context)
            problems = watch_errors(page)
            held, release = asyncio.Event(), asyncio.Event()

            async def hold_second_device_request(route: Route) -> None:
                if "offset=2&" in route.request.url:
                    held.set()
                    await release.wait()
                await route.continue_()

            await page.route(re.compile(r"/_agents\?route=%2Fdevice"), hold_second_device_request)
            await page.goto(served.server.url + "/")
            await asyncio.wait_for(held.wait(), 10)  # the first route's scan, under way
            await page.locator('.route[data-route="/tower/:id"]').click()
            items = page.locator(".agents li")
            await items.first.wait_for()
            assert await items.all_text_contents() == newest["agents"]
            release.set()
            await page.wait_for_timeout(1000)  # the devices' scan answers, and goes on
            assert await page.locator("#agents-title").text_content() == "Agents of /tower/:id"
            assert await items.all_text_contents() == newest["agents"]
            assert not problems, problems


async def test_a_batch_of_thousands_of_map_changes_is_rendered_once(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """A stream's batch holds an event per changed key. Each was rendered, sorting every
    key of the map and rebuilding its rows: 4,000 changes to a map of 5,000 entries kept
    the page's main thread busy for seconds (clicks and scrolling stalled)."""
    async with serve(routes=SHELF_ROUTES) as served:
        assert (await served.post_json("/shelf/1?lane=fill", [0, 5000]))[0] == 200
        async with open_chromium(tmp_path / "profile") as context:
            page = await first_page(context)
            problems = watch_errors(page)
            await page.goto(served.server.url + "/")
            await page.locator('.agents li[data-node="/shelf/1"]').click()
            card = page.locator('.card[data-lane="items"]')
            await card.locator(".dot.live").wait_for()
            await card.locator(".hint", has_text="5000 entries").wait_for()
            await page.evaluate(
                """() => { window.renders = 0; const render = LaneCard.prototype.render;
                LaneCard.prototype.render = function (...args) {
                  if (this.name === "items") window.renders += 1;
                  return render.apply(this, args); }; }"""
            )
            assert (await served.post_json("/shelf/1?lane=fill", [3000, 7000]))[0] == 200
            await card.locator(".hint", has_text="7000 entries").wait_for()
            await page.wait_for_timeout(300)
            renders = await page.evaluate("() => window.renders")
            assert 1 <= renders <= 10, renders  # one a frame: the batch, maybe split in two
            assert await card.locator("td.key").first.text_content() == "key-00000"
            assert not problems, problems


async def test_a_very_long_node_uri_wraps_in_the_agent_pane(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """A node URI has no spaces: a 4,000-character id made the agent's heading one line
    tens of thousands of pixels wide, and the pane scrolled sideways to the lanes' end."""
    node = "/shelf/" + "L" * 4000
    async with serve(routes=SHELF_ROUTES) as served:
        assert (await served.post_json(f"{node}?lane=label", {"id": "M" * 4000}))[0] == 200
        async with open_chromium(tmp_path / "profile") as context:
            page = await first_page(context)
            await page.goto(served.server.url + "/")
            await page.locator(".agents li").first.click()
            await page.locator('.card[data-lane="label"] .dot.live').wait_for()
            pane = await page.evaluate(
                "() => { const pane = document.querySelector('section#agent');"
                " return [pane.scrollWidth, pane.clientWidth]; }"
            )
            assert pane[0] <= pane[1], pane
