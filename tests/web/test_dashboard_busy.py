"""The dashboard in a real headless chromium while an agent it shows is busy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.waiting import wait_until
from tests.web.browser import CHROMIUM, first_page, open_chromium, watch_errors
from tests.web.harness import ServeFactory, Valve, reading

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run scripts/ensure-chromium"
)

WAIT_MS = 20_000


async def test_an_agent_picked_after_a_busy_one_is_live_while_the_busy_one_is(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """A lane's link syncs in its agent's turn, which an agent in a long async command
    (a call out to another service) does not give until it ends. The tab changed its
    links one request at a time: after a click on such an agent, every agent picked
    next showed waiting dots and no state for as long as the command ran."""
    async with serve() as served:
        await served.post_json("/device/1?lane=reading", reading(20.5))
        served.plane.submit("/valve/1", "hold", None)  # the valve's turn holds its mailbox
        try:
            await wait_until(lambda: Valve.entered == 1)
            async with open_chromium(tmp_path / "profile") as context:
                page = await first_page(context)
                problems = watch_errors(page)
                await page.goto(served.server.url + "/")
                await page.locator('.route[data-route="/valve/:id"]').click()
                await page.locator('.agents li[data-node="/valve/1"]').click()
                await page.locator('.card[data-lane="passed"] .dot.wait').wait_for()
                # the valve's lanes are linked, waiting for their syncs
                await wait_until(
                    lambda: "swimstream_web_streams_open 0\n" not in served.registry.render()
                )

                await page.locator('.route[data-route="/device/:id"]').click()
                await page.locator('.agents li[data-node="/device/1"]').click()
                status = page.locator('.card[data-lane="status"]')
                await status.locator(".dot.live").wait_for(timeout=WAIT_MS)
                await status.locator(".card-body", has_text="20.5").wait_for(timeout=WAIT_MS)
                await served.post_json("/device/1?lane=reading", reading(21.5, ts=2))
                await status.locator(".card-body", has_text="21.5").wait_for(timeout=WAIT_MS)

                # the valve's links, still syncing, are given up: the device's 4 are left
                await wait_until(
                    lambda: "swimstream_web_streams_open 4\n" in served.registry.render()
                )
                Valve.opened.set()
                await served.plane.settle()
                await served.post_json("/device/1?lane=reading", reading(22.5, ts=3))
                await status.locator(".card-body", has_text="22.5").wait_for(timeout=WAIT_MS)
                assert "swimstream_web_streams_open 4\n" in served.registry.render()
                assert not problems, problems
        finally:
            Valve.opened.set()


async def test_a_command_still_running_after_the_timeout_is_said_to_be_queued_not_done(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """The server answers 202 ``queued`` for a command whose callback has not finished
    after ``web.command_timeout`` (it runs on: do not send it again); the page took any
    2xx for "done", of a command that had not run yet, and may never succeed."""
    async with serve(command_timeout=0.5) as served:
        await served.plane.command("/valve/1", "passed", 0)
        try:
            async with open_chromium(tmp_path / "profile") as context:
                page = await first_page(context)
                problems = watch_errors(page)
                await page.goto(served.server.url + "/")
                await page.locator('.route[data-route="/valve/:id"]').click()
                await page.locator('.agents li[data-node="/valve/1"]').click()
                await page.locator("#command-lane").select_option("hold")
                await page.locator("#command-send").click()
                result = page.locator("#command-result")
                await result.filter(has_text="queued").wait_for(timeout=WAIT_MS)
                assert "done" not in await result.inner_text()
                assert Valve.entered == 1
                assert not problems, problems
        finally:
            Valve.opened.set()
