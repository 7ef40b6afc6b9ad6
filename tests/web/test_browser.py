"""The dashboard in a real headless chromium: routes, agents, and a lane changing live."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.web.browser import CHROMIUM, first_page, open_chromium, populate_towers, watch_errors
from tests.web.harness import ServeFactory, reading

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run scripts/ensure-chromium"
)


async def test_the_dashboard_lists_routes_and_shows_a_lane_changing_live(
    serve: ServeFactory, tmp_path: Path
) -> None:
    async with serve() as served:
        await populate_towers(served.plane, devices=12, towers=3)
        async with open_chromium(tmp_path / "profile") as context:
            page = await first_page(context)
            problems = watch_errors(page)
            await page.goto(served.server.url + "/")

            await expect(page).to_have_title("swimstream \u00b7 towers")
            patterns = page.locator(".route .pattern")
            await expect(patterns).to_contain_text(["/device/:id", "/tower/:id", "/world"])
            # the live numbers are the plane's: 12 devices, 3 towers, the world
            await expect(page.locator("[data-stat=active] b")).to_have_text("16")

            await page.locator('.route[data-route="/tower/:id"]').click()
            await expect(page.locator(".agents li")).to_have_count(3)
            await page.locator('.route[data-route="/device/:id"]').click()
            await page.locator('.agents li[data-node="/device/5"]').click()

            status = page.locator('.card[data-lane="status"]')
            await expect(status.locator(".dot")).to_have_class(re.compile(r"\blive\b"))
            await expect(page.locator('.card[data-lane="history"] tr')).to_have_count(4)

            sent = await served.post_json("/device/5?lane=reading", reading(12.5, "t2", 999))
            assert sent == (200, {"ok": True})
            await expect(status).to_contain_text("12.5")
            await expect(status).to_contain_text("999")
            await expect(page.locator('.card[data-lane="history"] tr')).to_have_count(5)
            await expect(page.locator('.card[data-lane="readings"] .big')).to_have_text("5")

            # the page's own command form goes through POST and shows the answer
            await page.locator("#command-lane").select_option("status")
            await page.locator("#command-body").fill('{"temp": 33.3}')
            await page.locator("#command-send").click()
            await expect(page.locator("#command-result")).to_contain_text("done")
            await expect(status).to_contain_text("33.3")
            assert served.plane.get("/device/5", "status") == {"temp": 33.3}

            # a tower's join lane is fed by links: the form does not offer it
            await page.locator('.route[data-route="/tower/:id"]').click()
            await page.locator('.agents li[data-node="/tower/t2"]').click()
            await expect(page.locator("#command-lane option")).to_have_text(["summary", "attach"])
            assert not problems, problems


async def test_a_page_of_another_site_cannot_send_commands_through_the_browser(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """A page may post ``text/plain`` to any address without a CORS preflight: a page of
    another site (here ``localhost``, the server being ``127.0.0.1``) has its POST
    refused; the dashboard's own origin sends the same one through."""
    async with serve() as served, open_chromium(tmp_path / "profile") as context:
        page = await first_page(context)
        post = """async url => {
            await fetch(url, {method: "POST", mode: "no-cors", body: '{"temp": 6.6}'});
        }"""
        target = served.server.url + "/device/9?lane=status"
        await page.goto(served.server.url.replace("127.0.0.1", "localhost") + "/healthz")
        await page.evaluate(post, target)
        await page.goto(served.server.url + "/healthz")
        await page.evaluate(post, served.server.url + "/device/8?lane=status")
        await served.plane.settle()
        assert not served.plane.is_active("/device/9")
        assert served.plane.get("/device/8", "status") == {"temp": 6.6}
