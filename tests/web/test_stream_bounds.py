"""What a lane stream holds for its client: bounded by the lane, whatever its traffic."""

from __future__ import annotations

from typing import Any

from swimstream import Agent, CommandLane, DemandMapLane, MapLane, ValueLane
from tests.web.harness import EventReader, ServeFactory
from tests.web.test_multiplex import multiplexed


class Window(Agent):
    """A map of the newest ten keys, as a lane keyed by time or by event id is."""

    items = MapLane[int, int]()
    churn = CommandLane[list[int]]()

    @churn.on_command
    def on_churn(self, span: list[int]) -> None:
        for n in range(*span):
            self.items.put(n, n)
            if n - 10 in self.items:
                self.items.remove(n - 10)


class Ticker(Agent):
    """A demand map of the newest ten numbers, computed for its links."""

    newest = ValueLane[int](default=0)
    numbers = DemandMapLane[int, int]()
    count = CommandLane[int]()

    @count.on_command
    def on_count(self, last: int) -> None:
        for n in range(self.newest.get(), last):
            self.numbers.cue(n)  # (the numbers a window of ten moves past are cued
            self.numbers.cue(n - 10)  # once: their on_cue is None, a remove)
        self.newest.set(last)

    @numbers.on_sync
    def on_numbers_sync(self) -> range:
        return range(max(0, self.newest.get() - 10), self.newest.get())

    @numbers.on_cue
    def on_number(self, n: int) -> int | None:
        return n if self.newest.get() - 10 <= n < self.newest.get() else None


WINDOW_ROUTES: dict[str, type[Agent]] = {"/window/:id": Window, "/ticker/:id": Ticker}


def apply_event(replica: dict[str, Any], name: str, data: Any) -> dict[str, Any]:
    """A client's copy of a map lane after one event of its stream."""
    if name == "state":
        return dict(data)
    if name == "update":
        replica[str(data["update"])] = data["value"]
    elif name == "remove":
        replica.pop(str(data["remove"]), None)
    elif name == "clear":
        replica.clear()
    return replica


async def test_a_map_whose_keys_churn_streams_its_state_not_every_key_it_ever_held(
    serve: ServeFactory,
) -> None:
    """Between two flushes a stream kept the newest op of every key the lane touched,
    removes of keys long gone included: a lane of ten entries whose keys move on (the
    newest readings by time) held one op per key ever written, and a client behind
    got all of them, a backlog, where the README promises the lane's size."""
    async with serve(routes=WINDOW_ROUTES) as served:
        assert (await served.post_json("/window/1?lane=churn", [0, 5]))[0] == 200
        url = served.url("/window/1?lane=items&stream=1")
        async with served.client.get(url) as response:
            events = EventReader(response)
            name, state = await events.next()
            assert (name, len(state)) == ("state", 5)
            assert (await events.next())[0] == "synced"
            # one turn, so all of it waits in the stream's buffer for the next flush
            assert (await served.post_json("/window/1?lane=churn", [5, 20_000]))[0] == 200
            status, final = await served.get_json("/window/1?lane=items")
            assert (status, len(final)) == (200, 10)

            replica, received = dict(state), 0
            while replica != final:
                name, data = await events.next()
                replica = apply_event(replica, name, data)
                received += 1
                assert received <= 100, "a backlog of the keys the lane no longer holds"


async def test_a_multiplexed_link_of_such_a_map_gets_its_state_too(serve: ServeFactory) -> None:
    async with serve(routes=WINDOW_ROUTES) as served, multiplexed(served) as mux:
        assert (await mux.change(link=[(1, "/window/2", "items")]))[1]["linked"] == [1]
        assert await mux.next() == ("state", {"link": 1, "data": {}})
        assert (await mux.next())[0] == "synced"
        assert (await served.post_json("/window/2?lane=churn", [0, 20_000]))[0] == 200
        final = (await served.get_json("/window/2?lane=items"))[1]

        replica: dict[str, Any] = {}
        received = 0
        while replica != final:
            name, data = await mux.next()
            replica = apply_event(replica, name, data["data"])
            received += 1
            assert received <= 100, "a backlog of the keys the lane no longer holds"


async def test_a_demand_map_whose_keys_churn_streams_its_state_too(serve: ServeFactory) -> None:
    async with serve(routes=WINDOW_ROUTES) as served:
        url = served.url("/ticker/1?lane=numbers&stream=1")
        async with served.client.get(url) as response:
            events = EventReader(response)
            assert await events.next() == ("state", {})
            assert (await events.next())[0] == "synced"
            assert (await served.post_json("/ticker/1?lane=count", 20_000))[0] == 200
            await served.plane.settle()  # (the cues are computed in a later turn)
            status, final = await served.get_json("/ticker/1?lane=numbers")
            assert (status, len(final)) == (200, 10)

            replica: dict[str, Any] = {}
            received = 0
            while replica != final:
                name, data = await events.next()
                replica = apply_event(replica, name, data)
                received += 1
                assert received <= 100, "a backlog of the keys the lane no longer holds"
