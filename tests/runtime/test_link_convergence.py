"""Links that open, close, reopen and write through, with agents passivated between:
once settled, every open replica (and what its callbacks told) is the owner's state.

Found a downlink restored from storage that lost the default of a lane never set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, CounterLane, MapLane, ValueLane
from swimstream.agent import Downlink, MapDownlink, ValueDownlink
from swimstream.testing import open_plane

KEYS = [0, 1, 2, 3, "a", True, 1.0]


class Owner(Agent):
    m = MapLane[Any, Any](max_entries=3)
    v = ValueLane[Any](default="d")
    c = CounterLane()


class Subscriber(Agent):
    """Mirrors the owner's map from its link's callbacks; writes through its links."""

    mirror = MapLane[Any, Any]()
    act = CommandLane[list[Any]]()

    def updated(self, key: Any, new: Any, old: Any) -> None:
        self.mirror.put(key, new)

    def removed(self, key: Any, old: Any) -> None:
        self.mirror.remove(key)

    def links(self) -> tuple[MapDownlink, ValueDownlink, ValueDownlink]:
        return (
            self.map_downlink("/o/1", "m", on_update=self.updated, on_remove=self.removed),
            self.downlink("/o/1", "v"),
            self.downlink("/o/1", "c"),
        )

    def open_links(self) -> list[Downlink]:
        return [link for link in self.downlinks.values() if not link.closed]

    @act.on_command
    def on_act(self, action: list[Any]) -> None:
        verb, key, n = action
        if verb == "link":
            self.links()
        elif verb == "unlink":
            for link in self.open_links():
                link.close()
            self.mirror.clear()
        elif self.open_links():
            map_link, value_link, count_link = self.links()
            if verb == "put":
                map_link.put(key, n)
            elif verb == "remove":
                map_link.remove(key)
            elif verb == "set":
                value_link.set(n)
            else:
                count_link.add(n)


OWNER_COMMANDS: dict[str, Callable[[Any, int], tuple[str, Any]]] = {
    "put": lambda key, n: ("m", {"update": key, "value": n}),
    "remove": lambda key, n: ("m", {"remove": key}),
    "clear": lambda key, n: ("m", {"clear": True}),
    "take": lambda key, n: ("m", {"take": abs(n)}),
    "set": lambda key, n: ("v", n),
    "add": lambda key, n: ("c", n),
}

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("owner"),
            st.sampled_from(sorted(OWNER_COMMANDS)),
            st.sampled_from(KEYS),
            st.integers(-3, 3),
        ),
        st.tuples(
            st.sampled_from(["/s/0", "/s/1"]),
            st.sampled_from(["link", "link", "unlink", "put", "remove", "set", "add"]),
            st.sampled_from(KEYS),
            st.integers(-3, 3),
        ),
        st.tuples(st.sampled_from(["settle", "passivate"]), st.none(), st.none(), st.none()),
    ),
    max_size=30,
)


async def run(script: list[tuple[str, Any, Any, Any]]) -> None:
    routes = {"/o/:id": Owner, "/s/:id": Subscriber}
    async with open_plane(routes, idle_timeout=5) as plane:
        for who, verb, key, n in script:
            if who == "owner":
                await plane.command("/o/1", *OWNER_COMMANDS[verb](key, n))
            elif who == "settle":
                await plane.settle()
            elif who == "passivate":
                await plane.advance(30)
            else:
                await plane.command(who, "act", [verb, key, n])
        await plane.settle()
        assert plane.failures.count == 0, plane.failures.last_error
        owner_map = plane.get("/o/1", "m")
        assert len(owner_map) <= 3
        for node in ("/s/0", "/s/1"):
            subscriber = plane.agent(node)
            assert isinstance(subscriber, Subscriber)
            if not subscriber.open_links():
                continue
            map_link, value_link, count_link = subscriber.links()
            assert map_link.to_dict() == owner_map
            assert plane.get(node, "mirror") == owner_map
            assert value_link.get() == plane.get("/o/1", "v")
            assert count_link.get() == plane.get("/o/1", "c")


@settings(max_examples=100)
@given(steps)
def test_open_replicas_converge_on_the_owner_s_state(
    script: list[tuple[str, Any, Any, Any]],
) -> None:
    asyncio.run(run(script))
