"""Several dashboard tabs at once in a real headless chromium, all live.

A browser opens at most 6 HTTP/1.1 connections to one host, for all its tabs; a stream
holds one for as long as it is open.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.browser import CHROMIUM, first_page, open_chromium, populate_towers, watch_errors
from tests.web.harness import ServeFactory, reading

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run scripts/ensure-chromium"
)

DEVICE_LANES = 4  # status, history, readings, reading
WAIT_MS = 30_000


async def test_three_tabs_show_their_lanes_live_at_once(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """The page opened a stream per lane (up to 4) and polled ``/_stats``: a second tab
    found the browser's 6 connections taken, and its lanes and numbers stayed pending
    for good. A tab now holds one stream for all the lanes it shows."""
    async with serve() as served:
        await populate_towers(served.plane, devices=6, towers=2)
        async with open_chromium(tmp_path / "profile") as context:
            pages = [await first_page(context)]
            pages += [await context.new_page() for _ in range(2)]
            problems = [watch_errors(page) for page in pages]
            for number, page in enumerate(pages):
                await page.goto(served.server.url + "/")
                await page.locator(f'.agents li[data-node="/device/{number}"]').click()
            for page in pages:
                live = page.locator(".card .dot.live")
                await live.nth(DEVICE_LANES - 1).wait_for(timeout=WAIT_MS)
                await page.locator('[data-stat="streams"]').wait_for(timeout=WAIT_MS)
            for number, page in enumerate(pages):
                temp = 70.5 + number
                sent = await served.post_json(
                    f"/device/{number}?lane=reading", reading(temp, f"t{number % 2}", 1000)
                )
                assert sent == (200, {"ok": True})
                status = page.locator('.card[data-lane="status"] .card-body')
                await status.filter(has_text=str(temp)).wait_for(timeout=WAIT_MS)
                readings = page.locator('.card[data-lane="readings"] .card-body')
                await readings.filter(has_text="5").wait_for(timeout=WAIT_MS)
            # every tab's numbers are polled too: its /_stats requests are not starved
            for page in pages:
                await page.locator(
                    '[data-stat="streams"] b', has_text=str(DEVICE_LANES * 3)
                ).wait_for(timeout=WAIT_MS)
            assert not any(problems), problems
