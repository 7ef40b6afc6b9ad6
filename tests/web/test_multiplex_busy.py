"""A multiplexed stream whose client links a lane of a busy agent links others meanwhile."""

from __future__ import annotations

import asyncio

from tests.support.waiting import wait_until
from tests.web.harness import Served, ServeFactory, Valve, reading
from tests.web.test_multiplex import multiplexed


async def test_a_link_waiting_for_a_busy_agent_holds_up_no_other_change(served: Served) -> None:
    """A link syncs in its agent's turn, and an agent in a long async command (a call
    out to another service) has none to give: every later change of the stream's links
    waited behind that one, so a dashboard tab that showed such an agent showed
    nothing live again, whatever agent it picked next, until the command ended."""
    served.plane.submit("/valve/1", "hold", None)  # the valve's turn holds its mailbox
    try:
        await wait_until(lambda: Valve.entered == 1)
        await served.post_json("/device/1?lane=reading", reading(20.0))
        async with multiplexed(served) as mux:
            held = asyncio.create_task(mux.change([(1, "/valve/1", "passed")]))
            await wait_until(lambda: "swimstream_web_streams_open 1\n" in served.registry.render())

            # a click on another agent: the valve's link goes, the device's comes
            answer = await asyncio.wait_for(mux.change([(2, "/device/1", "status")], [1]), 20)
            assert answer == (200, {"linked": [2], "refused": []})
            assert await mux.next() == ("state", {"link": 2, "data": reading(20.0)})
            assert (await mux.next())[0] == "synced"
            await served.post_json("/device/1?lane=reading", reading(21.0, ts=2))
            assert await mux.next() == ("set", {"link": 2, "data": reading(21.0, ts=2)})

            Valve.opened.set()  # the valve's sync comes now, for a link already unlinked
            status, body = await held
            assert status == 200
            assert body["linked"] == [] and [r["id"] for r in body["refused"]] == [1]
            await served.post_json("/device/1?lane=reading", reading(22.0, ts=3))
            assert await mux.next() == ("set", {"link": 2, "data": reading(22.0, ts=3)})
            await wait_until(lambda: "swimstream_web_streams_open 1\n" in served.registry.render())
    finally:
        Valve.opened.set()


async def test_a_new_link_s_state_is_written_at_once_whatever_the_stream_interval(
    serve: ServeFactory,
) -> None:
    """``web.stream_interval`` spaces the batches of changes. A link's state waited for
    the next batch too, so with a longer interval (fewer events for a browser) a lane
    the dashboard was asked to show stayed blank for as long, where a lane stream
    writes its state at once."""
    async with serve(stream_interval=60.0) as served:
        await served.post_json("/device/1?lane=reading", reading(20.0))
        async with multiplexed(served) as mux:
            assert (await mux.change([(1, "/device/1", "status")]))[1]["linked"] == [1]
            assert await mux.next() == ("state", {"link": 1, "data": reading(20.0)})
            assert (await mux.next())[0] == "synced"
            assert (await mux.change([(2, "/device/1", "readings")]))[1]["linked"] == [2]
            assert await mux.next() == ("state", {"link": 2, "data": 1})
