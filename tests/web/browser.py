"""Debian's chromium under Playwright, for the dashboard's browser test and its screenshot.

Playwright drives ``/usr/bin/chromium`` (installed by ``scripts/ensure-chromium``), never
a browser of its own: nothing here runs ``playwright install``. Each launch gets a fresh
profile directory, so no state leaks between runs.

``python -m tests.web.browser docs/dashboard.png`` serves the towers example with a
populated fleet and writes the screenshot the README shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import BrowserContext, ConsoleMessage, Page, async_playwright

from examples.towers import ROUTES
from swimstream.runtime import Plane
from tests.web.harness import reading, serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}


@contextlib.asynccontextmanager
async def open_chromium(profile: Path) -> AsyncIterator[BrowserContext]:
    """A headless chromium with a fresh profile in ``profile``, closed on exit."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]},
        )
        try:
            yield context
        finally:
            await context.close()


async def first_page(context: BrowserContext) -> Page:
    """The tab a persistent context opens with (or a new one)."""
    return context.pages[0] if context.pages else await context.new_page()


def watch_errors(page: Page) -> list[str]:
    """The page's uncaught errors and console errors, collected as they come."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    return problems


async def populate_towers(plane: Plane, devices: int, towers: int, seed: int = 3) -> None:
    """Readings for ``devices`` devices spread over ``towers`` towers, a few each."""
    rng = random.Random(seed)
    ts = 0
    for _round in range(4):
        for device in range(devices):
            ts += 1
            temp = round(rng.uniform(55.0, 97.0), 1)
            await plane.command(
                f"/device/{device}", "reading", reading(temp, f"t{device % towers}", ts)
            )
    await plane.settle()


async def take_screenshot(target: Path) -> None:
    """Serve the towers example, open /device/6 in the dashboard, save a screenshot."""
    async with serve(ROUTES) as served:
        await populate_towers(served.plane, devices=48, towers=6)
        with tempfile.TemporaryDirectory() as profile:
            async with open_chromium(Path(profile)) as context:
                page = await first_page(context)
                await page.goto(served.server.url + "/")
                await page.locator('.agents li[data-node="/device/6"]').click()
                await page.locator('.card[data-lane="status"] .dot.live').wait_for()
                rng = random.Random(11)
                for ts in range(1000, 1012):  # live traffic for the throughput numbers
                    for device in range(0, 48, 3):
                        temp = round(rng.uniform(55.0, 97.0), 1)
                        tower = f"t{device % 6}"
                        await served.plane.command(
                            f"/device/{device}", "reading", reading(temp, tower, ts)
                        )
                    await asyncio.sleep(0.2)
                await page.wait_for_timeout(400)
                target.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(target))


if __name__ == "__main__":
    asyncio.run(take_screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png")))
