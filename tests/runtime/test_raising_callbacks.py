"""A callback that raises (or closes its link) midway through a change of several parts
fails its message only: the lane's owner and its replicas, joins included, end holding
the same state, every part made before it streamed and none after it half done."""

from __future__ import annotations

import pytest

from swimstream import Agent, CommandLane, JoinMapLane, MapLane, ValueLane
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


class Store(Agent):
    stock = JoinMapLane[str, int]()
    sources = CommandLane[str]()
    drop = CommandLane[str]()

    @sources.on_command
    def on_source(self, node: str) -> None:
        self.stock.join(node, node, "items")

    @drop.on_command
    def on_drop(self, node: str) -> None:
        self.stock.remove(node)

    @stock.on_remove
    def stock_removed(self, key: str, old: int) -> None:
        if key == "a":
            raise RuntimeError("on_remove fails")


async def test_a_join_map_link_removed_drops_all_its_entries_when_an_on_remove_raises() -> None:
    """Removing a link lets go of its entries one by one: an ``on_remove`` that raised
    left the entries after it in the join for good, brought by a link no longer open."""
    async with open_plane({**ROUTES, "/store/:id": Store}) as plane:
        for key in "abc":
            await plane.command("/shelf/1", "items", {"update": key, "value": 1})
        await plane.command("/store/s", "sources", "/shelf/1")
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"a": 1, "b": 1, "c": 1}
        await plane.command("/store/s", "drop", "/shelf/1")
        await plane.settle()
        assert plane.failures.count == 1
        assert plane.get("/store/s", "stock") == {}


class Rejoining(Store):
    move = CommandLane[str]()

    @move.on_command
    def on_move(self, node: str) -> None:
        self.stock.join("/shelf/1", node, "items")  # the key of the first link, elsewhere


async def test_a_join_map_key_joined_elsewhere_takes_its_new_link_when_an_on_remove_raises() -> (
    None
):
    """The old link's entries go as the key is joined to another map: an ``on_remove``
    that raised there also left the new link, open and feeding the join, out of the
    lane's links, where neither ``joined()`` nor ``remove`` could find it."""
    async with open_plane({**ROUTES, "/store/:id": Rejoining}) as plane:
        for key in "abc":
            await plane.command("/shelf/1", "items", {"update": key, "value": 1})
        await plane.command("/shelf/2", "items", {"update": "x", "value": 2})
        await plane.command("/store/s", "sources", "/shelf/1")
        await plane.settle()
        await plane.command("/store/s", "move", "/shelf/2")
        await plane.settle()
        assert plane.failures.count == 1
        assert plane.get("/store/s", "stock") == {"x": 2}
        stock = plane.lane("/store/s", "stock")
        assert isinstance(stock, JoinMapLane)
        assert stock.joined() == {"/shelf/1": ("/shelf/2", "items")}
        await plane.command("/store/s", "drop", "/shelf/1")
        await plane.settle()
        assert plane.get("/store/s", "stock") == {}
        assert not plane.agent("/store/s").downlinks


class Board(Agent):
    notes = MapLane[str, int]()
    latest = ValueLane[int](default=0)
    total = ValueLane[int](default=0)

    @notes.on_update
    def note_updated(self, key: str, new: int, old: int | None) -> None:
        self.total.set(new)

    @latest.on_set
    def latest_set(self, new: int, old: int) -> None:
        self.total.set(new)

    @total.on_set
    def total_set(self, new: int, old: int) -> None:
        if new < 0:
            raise ValueError("a negative total")


class Writer(Agent):
    write = CommandLane[int]()

    @write.on_command
    def on_write(self, n: int) -> None:
        self.map_downlink("/board/b", "notes")["k"] = n
        self.downlink("/board/b", "latest").set(n)


async def test_a_callback_failing_inside_a_write_through_is_reported_where_it_failed() -> None:
    """A write through a link runs the owner's callbacks as a write of its own does: a
    lane's callback that raised inside another's was reported as the outer one's, with
    the inner report for its cause, where the owner's own write names the inner one."""
    async with open_plane({"/board/:id": Board, "/writer/:id": Writer}) as plane:
        await plane.command("/writer/w", "write", -1)
        await plane.settle()
        assert plane.failures.by_site() == {("/board/:id", "total", "on_set"): 2}
        assert isinstance(plane.failures.last_error, ValueError)


class Picky(Agent):
    stock = JoinMapLane[str, int]()
    sources = CommandLane[str]()
    seen: list[str]

    def on_start(self) -> None:
        self.seen = []

    @sources.on_command
    def on_source(self, node: str) -> None:
        self.stock.join(node, node, "items")

    @stock.on_update
    def stock_updated(self, key: str, new: int, old: int | None) -> None:
        self.seen.append(key)
        if key == "b":  # enough of this map: let it go
            self.stock.remove("/shelf/1")


class Quitter(Agent):
    watch = CommandLane[str]()
    seen: list[str]

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.seen = []
        self.map_downlink(node, "items", on_update=self.item_updated)

    def item_updated(self, key: str, new: int, old: int | None) -> None:
        self.seen.append(key)
        if key == "b":
            for link in list(self.downlinks.values()):
                link.close()


async def test_a_link_closed_in_a_callback_of_its_delivery_calls_back_no_more() -> None:
    """A delivery of several changes (a sync, or changes coalesced) went on calling back
    after a callback closed its link: a join map lane then took the entries after it,
    from a link removed, and held them for good."""
    routes = {**ROUTES, "/picky/:id": Picky, "/quitter/:id": Quitter}
    async with open_plane(routes) as plane:
        for key in "abc":
            await plane.command("/shelf/1", "items", {"update": key, "value": 1})
        await plane.command("/picky/p", "sources", "/shelf/1")
        await plane.command("/quitter/q", "watch", "/shelf/1")
        await plane.settle()
        assert plane.agent("/quitter/q").seen == ["a", "b"]  # type: ignore[attr-defined]
        assert plane.agent("/picky/p").seen == ["a", "b"]  # type: ignore[attr-defined]
        assert plane.get("/picky/p", "stock") == {}
        assert plane.failures.count == 0
