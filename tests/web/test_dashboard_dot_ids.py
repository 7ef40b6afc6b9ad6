"""The dashboard commands agents whose id is "." or "..", in a real headless chromium.

Their node URIs hold ``%2E`` (``/device/%2E``, ``/device/%2E%2E``), which a browser's
URL parser takes as the dot segments ``.`` and ``..``: the dashboard's Send posted to
``/device/`` (404) or ``/`` (405), and such an agent could not be commanded from it.
It now sends the node URI in the query (``POST /?node=<node uri>&lane=<lane>``), which
no browser rewrites.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.web.browser import CHROMIUM, first_page, open_chromium, watch_errors
from tests.web.harness import ServeFactory, reading

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run scripts/ensure-chromium"
)


async def test_the_dashboard_sends_commands_to_agents_named_dot_and_dot_dot(
    serve: ServeFactory, tmp_path: Path
) -> None:
    async with serve() as served:
        for node in ("/device/%2E", "/device/%2E%2E", "/device/5"):
            sent = await served.post_json(f"{node}?lane=reading", reading(1.5, "t1", 1))
            assert sent == (200, {"ok": True}), node
        async with open_chromium(tmp_path / "profile") as context:
            page = await first_page(context)
            problems = watch_errors(page)
            await page.goto(served.server.url + "/")
            await page.locator('.route[data-route="/device/:id"]').click()
            await expect(page.locator(".agents li")).to_have_count(3)
            for node, temp in (("/device/%2E", 31.5), ("/device/%2E%2E", 32.5)):
                await page.locator(f'.agents li[data-node="{node}"]').click()
                status = page.locator('.card[data-lane="status"]')
                await expect(status.locator(".dot")).to_have_class(re.compile(r"\blive\b"))
                await expect(status).to_contain_text("1.5")
                await page.locator("#command-lane").select_option("status")
                await page.locator("#command-body").fill(f'{{"temp": {temp}}}')
                await page.locator("#command-send").click()
                await expect(page.locator("#command-result")).to_contain_text("done")
                await expect(status).to_contain_text(str(temp))
                assert served.plane.get(node, "status") == {"temp": temp}
            assert served.plane.get("/device/5", "status") != {"temp": 32.5}
            assert not problems, problems


async def test_a_command_names_its_node_in_the_query_at_the_root(serve: ServeFactory) -> None:
    """The form the dashboard sends, for clients whose URL parser rewrites dot segments;
    the root answers a POST naming no node as before (405), and a node URI given in the
    path and the query both is refused rather than one of them picked."""
    async with serve() as served:
        assert await served.post_json("/?node=%2Fdevice%2F%252E%252E&lane=status", {"temp": 2}) == (
            200,
            {"ok": True},
        )
        assert served.plane.get("/device/%2E%2E", "status") == {"temp": 2}
        status, answer = await served.post_json("/?lane=status", {"temp": 2})
        assert status == 405, answer
        status, answer = await served.post_json("/?node=%2Fnowhere&lane=status", None)
        assert status == 404, answer
        status, answer = await served.post_json(
            "/device/5?node=%2Fdevice%2F6&lane=status", {"temp": 3}
        )
        assert status == 400 and "node" in answer["error"], answer
