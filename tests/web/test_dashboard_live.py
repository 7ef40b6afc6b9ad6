"""The dashboard's lanes in a real headless chromium: staying right, and staying live.

What the page shows of a lane must be what ``GET`` of that lane answers, after any
changes, whatever the keys; and a stream the browser gave up on must come back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page

from swimstream import Agent, MapLane, ValueLane
from tests.web.browser import CHROMIUM, first_page, open_chromium
from tests.web.harness import ServeFactory

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run scripts/ensure-chromium"
)


class Shelf(Agent):
    """A map whose keys are whatever JSON scalars commands bring, and a value."""

    items = MapLane[Any, Any]()
    label = ValueLane[Any](default=None)


SHELF_ROUTES: dict[str, type[Agent]] = {"/shelf/:id": Shelf}


def watch_errors(page: Page) -> list[str]:
    """The page's uncaught errors and console errors, collected as they come."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    return problems


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
