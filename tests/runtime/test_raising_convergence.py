"""Callbacks that raise, on the owner and on its subscribers, fail their messages only:
once settled, every open replica and join still holds the owner's state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, JoinMapLane, MapLane
from swimstream.agent import MapDownlink
from swimstream.testing import open_plane

KEYS = [0, 1, 2, 3, "a"]


class Owner(Agent):
    m = MapLane[Any, int](max_entries=3)

    @m.on_update
    def updated(self, key: Any, new: int, old: int | None) -> None:
        if new < 0:
            raise ValueError("a negative value")

    @m.on_remove
    def removed(self, key: Any, old: int) -> None:
        if old == 0:
            raise ValueError("a zero removed")


class Subscriber(Agent):
    joined = JoinMapLane[Any, int]()
    act = CommandLane[list[Any]]()

    @joined.on_update
    def join_updated(self, key: Any, new: int, old: int | None) -> None:
        if new == 2:
            raise ValueError("a two joined")

    @joined.on_remove
    def join_removed(self, key: Any, old: int) -> None:
        if old == 3:
            raise ValueError("a three left")

    def link(self) -> MapDownlink:
        return self.map_downlink("/o/1", "m", on_update=self.seen, on_remove=self.gone)

    def seen(self, key: Any, new: int, old: int | None) -> None:
        if new == 1:
            raise ValueError("a one seen")

    def gone(self, key: Any, old: int) -> None:
        if key == 1:
            raise ValueError("a 1 gone")

    @act.on_command
    def on_act(self, action: list[Any]) -> None:
        verb, key, n = action
        if verb == "join":
            self.joined.join("o", "/o/1", "m")
        elif verb == "unjoin":
            self.joined.remove("o")
        elif verb == "put":
            self.link()[key] = n
        elif verb == "remove":
            self.link().remove(key)
        elif verb == "link":
            self.link()
        elif verb == "unlink":
            self.link().close()


OWNER: dict[str, Callable[[Any, int], dict[str, Any]]] = {
    "put": lambda key, n: {"update": key, "value": n},
    "remove": lambda key, n: {"remove": key},
    "clear": lambda key, n: {"clear": True},
    "take": lambda key, n: {"take": abs(n)},
    "drop": lambda key, n: {"drop": abs(n)},
}

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("owner"),
            st.sampled_from(sorted(OWNER)),
            st.sampled_from(KEYS),
            st.integers(-1, 3),
        ),
        st.tuples(
            st.just("/s/0"),
            st.sampled_from(["join", "unjoin", "link", "unlink", "put", "remove"]),
            st.sampled_from(KEYS),
            st.integers(-1, 3),
        ),
        st.tuples(st.sampled_from(["settle", "passivate"]), st.none(), st.none(), st.none()),
    ),
    max_size=30,
)


async def run(script: list[tuple[str, Any, Any, Any]]) -> None:
    async with open_plane({"/o/:id": Owner, "/s/:id": Subscriber}, idle_timeout=5) as plane:
        for who, verb, key, n in script:
            if who == "owner":
                await plane.command("/o/1", "m", OWNER[verb](key, n))
            elif who == "settle":
                await plane.settle()
            elif who == "passivate":
                await plane.advance(30)
            else:
                await plane.command(who, "act", [verb, key, n])
        await plane.settle()
        owner = plane.get("/o/1", "m")
        subscriber = plane.agent("/s/0")
        assert isinstance(subscriber, Subscriber)
        for link in subscriber.downlinks.values():
            assert isinstance(link, MapDownlink)
            if link.synced:
                assert link.to_dict() == owner
        assert plane.get("/s/0", "joined") == (owner if subscriber.joined.joined() else {})


@settings(max_examples=200, deadline=None)
@given(steps)
def test_replicas_and_joins_hold_the_owner_s_state_whatever_the_callbacks_raise(
    script: list[tuple[str, Any, Any, Any]],
) -> None:
    asyncio.run(run(script))
