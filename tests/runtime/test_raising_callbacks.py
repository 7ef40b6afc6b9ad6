"""A callback that raises midway fails its message, and leaves the lane's owner and its
replicas holding the same state: every change made before it is streamed."""

from __future__ import annotations

import pytest

from swimstream import Agent, CommandLane, MapLane
from swimstream.testing import open_plane


class Shelf(Agent):
    items = MapLane[str, int]()

    @items.on_remove
    def item_removed(self, key: str, old: int) -> None:
        if key == "b":
            raise RuntimeError("on_remove fails")


class Reader(Agent):
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.link = self.map_downlink(node, "items")


ROUTES = {"/shelf/:id": Shelf, "/reader/:id": Reader}


@pytest.mark.parametrize("command", [{"drop": 3}, {"take": 1}])
async def test_a_take_or_drop_whose_on_remove_raises_reaches_the_replicas(
    command: dict[str, int],
) -> None:
    """The removes were all made at once, and the first ``on_remove`` that raised kept
    the rest from the links: the replica held keys the owner no longer had, for good."""
    async with open_plane(ROUTES) as plane:
        for key in "abcd":
            await plane.command("/shelf/1", "items", {"update": key, "value": 1})
        await plane.command("/reader/r", "watch", "/shelf/1")
        await plane.settle()
        await plane.command("/shelf/1", "items", command)
        await plane.settle()
        assert plane.failures.count == 1
        assert plane.get("/shelf/1", "items") == ({"d": 1} if "drop" in command else {"a": 1})
        replica = plane.agent("/reader/r").link  # type: ignore[attr-defined]
        assert dict(replica.items()) == plane.get("/shelf/1", "items")
