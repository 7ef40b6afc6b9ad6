"""Streams of demand lanes: ``on_cue`` runs for a linked client, and its failure once."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from swimstream import Agent, CommandLane, DemandValueLane
from tests.support.waiting import wait_until
from tests.web.harness import ServeFactory
from tests.web.test_demand_reads import Gauge
from tests.web.test_multiplex import multiplexed

FAILED = (
    "on_cue of lane 'doubled' on agent /gauge/1 raised: ValueError: no double of a negative level"
)


async def test_a_stream_of_an_on_cue_that_raises_is_one_failure_as_a_read_is(
    serve: ServeFactory,
) -> None:
    """(The link's sync, the stream's read of the state and the web port each counted
    it: the dashboard's failures grew by three at each of a card's retries.)"""
    async with serve(routes={"/gauge/:id": Gauge}) as served:
        assert (await served.post_json("/gauge/1?lane=set_level", -1))[0] == 200
        async with served.client.get(served.url("/gauge/1?lane=doubled&stream=1")) as response:
            assert response.status == 500
            assert (await response.json())["error"] == FAILED
        assert served.plane.statistics().callback_failures == 1
        async with multiplexed(served) as mux:
            answer = await mux.change([(1, "/gauge/1", "doubled")])
            assert answer == (
                200,
                {"linked": [], "refused": [{"id": 1, "status": 500, "error": FAILED}]},
            )
        assert served.plane.statistics().callback_failures == 2
        assert (await served.get_json("/gauge/1?lane=doubled"))[0] == 500
        assert served.plane.statistics().callback_failures == 3


class Meter(Agent):
    """A demand lane that counts its computations, and a command that holds the mailbox."""

    opened: ClassVar[asyncio.Event]
    entered: ClassVar[int] = 0
    computed: ClassVar[int] = 0
    hold = CommandLane[Any]()
    reading = DemandValueLane[int]()

    @hold.on_command
    async def on_hold(self, _value: Any) -> None:
        Meter.entered += 1
        await Meter.opened.wait()

    @reading.on_cue
    def on_reading(self) -> int:
        Meter.computed += 1
        return Meter.computed


async def test_a_link_unlinked_before_its_sync_computes_nothing(serve: ServeFactory) -> None:
    """A link unlinked while its agent was busy (its card closed): its sync still ran
    when the agent was free, the lane's whole JSON or a demand lane's ``on_cue``, for
    nobody."""
    Meter.opened, Meter.entered, Meter.computed = asyncio.Event(), 0, 0
    async with serve(routes={"/meter/:id": Meter}) as served, multiplexed(served) as mux:
        served.plane.submit("/meter/1", "hold", None)
        try:
            await wait_until(lambda: Meter.entered == 1)
            linking = asyncio.create_task(mux.change([(1, "/meter/1", "reading")]))
            await wait_until(lambda: "swimstream_web_streams_open 1\n" in served.registry.render())
            assert await mux.change(unlink=[1]) == (200, {"linked": [], "refused": []})
        finally:
            Meter.opened.set()
        assert (await linking)[1]["refused"][0]["status"] == 409
        await served.plane.settle()
        assert Meter.computed == 0
        assert (await served.get_json("/meter/1?lane=reading")) == (200, 1)  # it computes
