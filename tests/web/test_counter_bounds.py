"""A count that several writers add to stays within 64 bits, as one writer's does, so
it is always served as JSON.

Each writer was held within its own totals only: visitors adding 2^62 each through
their links made a count past what 64 bits hold, which orjson cannot write: every read
of the lane answered 500 from then on. Now an add that would take the count past
2^63 - 1, as the writer knows it, fails the callback that made it (TypeError naming the
lane) and changes nothing; adds made at once by writers that had not seen each other's
(a link not yet synced) may still sum past it, and the count then reads as the bound.
"""

from __future__ import annotations

from swimstream import Agent, CommandLane, CounterLane
from swimstream.crdt.counter import MAX_TOTAL
from tests.web.harness import EventReader, serve

QUARTER = 2**62
"""A quarter of what 64 bits hold (unsigned): each writer may add it."""


class Hits(Agent):
    count = CounterLane()


class Visitor(Agent):
    """Opens a link to ``/hits/1`` (``link``), then adds through it (``visit``)."""

    link = CommandLane[None]()
    visit = CommandLane[int]()

    @link.on_command
    def on_link(self, _: None) -> None:
        self.downlink("/hits/1", "count")

    @visit.on_command
    def on_visit(self, hits: int) -> None:
        self.downlink("/hits/1", "count").add(hits)


ROUTES: dict[str, type[Agent]] = {"/hits/:id": Hits, "/visitor/:id": Visitor}
OK = (200, {"ok": True})


async def test_an_add_through_a_link_past_64_bits_is_refused_naming_the_lane() -> None:
    async with serve(ROUTES) as served:
        plane = served.plane
        assert await served.post_json("/visitor/1?lane=visit", QUARTER) == OK
        assert await served.post_json("/visitor/2?lane=visit", QUARTER - 1) == OK
        await plane.settle()
        assert await served.get_json("/hits/1?lane=count") == (200, MAX_TOTAL)
        for visitor in ("1", "3"):  # (3's link opened and synced first)
            if visitor == "3":
                assert await served.post_json("/visitor/3?lane=link", None) == OK
                await plane.settle()
            failed = plane.failures.count
            status, answer = await served.post_json(f"/visitor/{visitor}?lane=visit", 1)
            await plane.settle()
            assert status == 422 and plane.failures.count == failed + 1, answer
            error = plane.failures.last_error
            assert isinstance(error, TypeError) and "/hits/1#count" in str(error), error
            assert await served.get_json("/hits/1?lane=count") == (200, MAX_TOTAL)
        status, answer = await served.post_json("/hits/1?lane=count", 1)
        assert status == 422 and "'count'" in answer["error"], answer
        assert await served.post_json("/hits/1?lane=count", -1) == OK
        assert await served.get_json("/hits/1?lane=count") == (200, MAX_TOTAL - 1)


async def test_a_count_concurrent_writers_took_past_64_bits_reads_as_the_bound() -> None:
    async with serve(ROUTES) as served:
        plane = served.plane
        for visitor in ("1", "2", "3", "4", "5"):  # each adds through a link not yet synced
            assert await served.post_json(f"/visitor/{visitor}?lane=visit", QUARTER) == OK
        await plane.settle()
        assert await served.get_json("/hits/1?lane=count") == (200, MAX_TOTAL)
        async with served.client.get(served.url("/hits/1?lane=count&stream=1")) as response:
            assert response.status == 200
            events = EventReader(response)
            assert await events.next() == ("state", MAX_TOTAL)
            assert (await events.next())[0] == "synced"
            assert await served.post_json("/visitor/6?lane=visit", QUARTER) == OK
            assert await events.next() == ("set", MAX_TOTAL)
