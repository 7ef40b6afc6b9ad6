"""The dashboard in a real headless chromium across a restart of its instance."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Route

from swimstream.metrics import MetricsRegistry
from swimstream.testing import open_plane
from swimstream.web.startup import StartingServer
from tests.web.browser import CHROMIUM, first_page, open_chromium
from tests.web.test_dashboard_live import SHELF_ROUTES, web_server

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run scripts/ensure-chromium"
)


async def test_a_page_whose_routes_came_while_the_instance_restarted_loads_them_later(
    tmp_path: Path,
) -> None:
    """A page loaded as its instance stopped asked for the routes of the one starting
    (503 while it starts): it said "cannot load routes" for good, with no route or
    agent to pick, until the user reloaded it. It tries again."""
    async with open_plane(SHELF_ROUTES) as plane:
        await plane.command("/shelf/1", "label", "here")
        async with open_chromium(tmp_path / "profile") as context:
            page = await first_page(context)
            asked, restarted = asyncio.Event(), asyncio.Event()

            async def hold(route: Route) -> None:  # the first request is sent once
                if not asked.is_set():  # the instance restarts, to the one starting
                    asked.set()
                    await restarted.wait()
                await route.continue_()

            await page.route("**/_routes", hold)
            first = web_server(plane)
            async with first:
                port = first.port
                await page.goto(first.url + "/")
                await asked.wait()
            starting = StartingServer(("127.0.0.1", port), MetricsRegistry())
            await starting.start()
            try:
                restarted.set()
                await page.locator("#routes", has_text="cannot load routes").wait_for()
            finally:
                await starting.stop()
            async with web_server(plane, port):
                await page.locator('.route[data-route="/shelf/:id"]').wait_for(timeout=20_000)
                await page.locator('.agents li[data-node="/shelf/1"]').click()
                label = page.locator('.card[data-lane="label"]')
                await label.locator(".card-body", has_text="here").wait_for(timeout=20_000)
