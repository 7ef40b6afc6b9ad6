"""Links between agents: sync, write-through convergence, joins, coalescing, closing."""

import asyncio
from typing import Any

import pytest

from swimstream import (
    Agent,
    CommandLane,
    CounterLane,
    JoinMapLane,
    JoinValueLane,
    MapLane,
    ValueLane,
)
from swimstream.agent import MapDownlink, ValueDownlink
from swimstream.errors import ClosedResourceError
from swimstream.testing import open_plane


class Sensor(Agent):
    reading = ValueLane[float | None](default=None)
    tags = MapLane[str, str]()
    count = CounterLane()


class Watcher(Agent):
    """Links to a sensor; records every callback it gets."""

    seen = ValueLane[list[Any]](default=[])
    gate: asyncio.Event | None = None
    hold = CommandLane[None]()
    watch = CommandLane[str]()

    def _note(self, *event: Any) -> None:
        self.seen.set([*self.seen.get(), list(event)])

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.value_link = self.downlink(node, "reading", on_set=self.reading_changed)
        self.map_link = self.map_downlink(
            node, "tags", on_update=self.tag_updated, on_remove=self.tag_removed
        )
        self.count_link = self.downlink(node, "count", on_set=self.count_changed)

    @hold.on_command
    async def on_hold(self, _: None) -> None:
        assert self.gate is not None
        await self.gate.wait()

    def reading_changed(self, new: Any, old: Any) -> None:
        self._note("reading", new, old)

    def tag_updated(self, key: str, new: str, old: str | None) -> None:
        self._note("tag", key, new, old)

    def tag_removed(self, key: str, old: str) -> None:
        self._note("untag", key, old)

    def count_changed(self, new: int, old: int) -> None:
        self._note("count", new, old)


ROUTES = {"/sensor/:id": Sensor, "/watcher/:id": Watcher}


async def test_a_downlink_syncs_then_follows_every_change() -> None:
    async with open_plane(ROUTES) as plane:
        await plane.command("/sensor/1", "reading", 20.5)
        await plane.command("/sensor/1", "tags", {"update": "room", "value": "kitchen"})
        await plane.command("/watcher/w", "watch", "/sensor/1")
        await plane.settle()
        await plane.command("/sensor/1", "reading", 21.0)
        await plane.command("/sensor/1", "tags", {"remove": "room"})
        await plane.settle()
        assert plane.get("/watcher/w", "seen") == [
            ["reading", 20.5, None],
            ["tag", "room", "kitchen", None],
            ["reading", 21.0, 20.5],
            ["untag", "room", "kitchen"],
        ]
        watcher = plane.agent("/watcher/w")
        assert isinstance(watcher.value_link, ValueDownlink)  # type: ignore[attr-defined]
        assert watcher.value_link.synced and watcher.value_link.get() == 21.0  # type: ignore[attr-defined]


async def test_a_map_downlink_reads_and_writes_as_the_map_lane_does() -> None:
    """A map downlink is a mapping like the lane it replicates: indexing, iteration in
    the lane's order, ``[k] = v`` and ``del`` write through to the owner."""
    async with open_plane(ROUTES) as plane:
        for key, value in (("b", "2"), ("a", "1"), ("c", "3")):
            await plane.command("/sensor/1", "tags", {"update": key, "value": value})
        await plane.command("/watcher/w", "watch", "/sensor/1")
        await plane.settle()
        link = plane.agent("/watcher/w").map_link  # type: ignore[attr-defined]
        assert isinstance(link, MapDownlink)
        owner = plane.lane("/sensor/1", "tags")
        assert isinstance(owner, MapLane)
        assert link["a"] == "1"
        with pytest.raises(KeyError):
            link["zz"]
        assert list(link) == list(owner) == link.keys() == ["b", "a", "c"]
        assert link.values() == ["2", "1", "3"]
        assert link.items() == owner.items()
        link["d"] = "4"
        del link["b"]
        with pytest.raises(KeyError):
            del link["b"]
        await plane.settle()
        assert plane.get("/sensor/1", "tags") == {"a": "1", "c": "3", "d": "4"}
        assert plane.get("/watcher/w", "seen")[-2:] == [
            ["tag", "d", "4", None],
            ["untag", "b", "2"],
        ]
        link.close()
        with pytest.raises(ClosedResourceError):
            del link["b"]
        with pytest.raises(ClosedResourceError):
            link["e"] = "5"


async def test_owner_and_subscribers_writing_concurrently_converge() -> None:
    async with open_plane(ROUTES) as plane:
        await plane.command("/watcher/a", "watch", "/sensor/1")
        await plane.command("/watcher/b", "watch", "/sensor/1")
        await plane.settle()
        links = {name: plane.agent(f"/watcher/{name}") for name in "ab"}
        for round_ in range(20):  # everyone writes in the same turn-free window
            plane.lane("/sensor/1", "reading").set(float(round_))  # type: ignore[attr-defined]
            links["a"].value_link.set(100.0 + round_)  # type: ignore[attr-defined]
            links["b"].value_link.set(200.0 + round_)  # type: ignore[attr-defined]
            links["a"].map_link.put(f"k{round_ % 3}", f"a{round_}")  # type: ignore[attr-defined]
            links["b"].map_link.put(f"k{round_ % 3}", f"b{round_}")  # type: ignore[attr-defined]
            links["a"].count_link.add(1)  # type: ignore[attr-defined]
            links["b"].count_link.add(2)  # type: ignore[attr-defined]
            plane.lane("/sensor/1", "count").add(3)  # type: ignore[attr-defined]
        await plane.settle()
        owner_value = plane.get("/sensor/1", "reading")
        owner_tags = plane.get("/sensor/1", "tags")
        assert plane.get("/sensor/1", "count") == 20 * (1 + 2 + 3)
        for agent in links.values():
            assert agent.value_link.get() == owner_value  # type: ignore[attr-defined]
            assert agent.map_link.to_dict() == owner_tags  # type: ignore[attr-defined]
            assert agent.count_link.get() == 120  # type: ignore[attr-defined]
        assert set(owner_tags) == {"k0", "k1", "k2"}


async def test_a_stalled_subscriber_then_sees_the_latest_value_not_a_backlog() -> None:
    async with open_plane(ROUTES) as plane:
        await plane.command("/watcher/slow", "watch", "/sensor/1")
        await plane.settle()
        watcher = plane.agent("/watcher/slow")
        watcher.gate = asyncio.Event()
        await plane.command("/watcher/slow", "hold")
        await asyncio.sleep(0)
        sensor = plane.agent("/sensor/1")
        for n in range(1000):
            sensor.reading.set(float(n))  # type: ignore[attr-defined]
            sensor.tags.put(f"k{n % 5}", str(n))  # type: ignore[attr-defined]
        mailbox = plane._cells["/watcher/slow"].mailbox
        assert mailbox is not None and len(mailbox) <= 3  # one delivery per link, not 2000
        watcher.gate.set()  # type: ignore[attr-defined]
        await plane.settle()
        seen = plane.get("/watcher/slow", "seen")
        readings = [event for event in seen if event[0] == "reading"]
        tags = [event for event in seen if event[0] == "tag"]
        assert readings == [["reading", 999.0, None]]
        assert sorted(tags) == sorted(["tag", f"k{k}", str(995 + k), None] for k in range(5))


async def test_a_closed_link_gets_nothing_more() -> None:
    async with open_plane(ROUTES) as plane:
        await plane.command("/watcher/w", "watch", "/sensor/1")
        await plane.command("/sensor/1", "reading", 1.0)
        await plane.settle()
        watcher = plane.agent("/watcher/w")
        for link in list(watcher.downlinks.values()):
            link.close()
        assert plane.statistics().links == 0
        await plane.command("/sensor/1", "reading", 2.0)
        await plane.settle()
        assert plane.get("/watcher/w", "seen") == [["reading", 1.0, None]]
        assert not watcher.downlinks


class Catalog(Agent):
    items = MapLane[str, int]()


class Store(Agent):
    stock = JoinMapLane[str, int]()
    sources = CommandLane[dict[str, str]]()
    drop = CommandLane[str]()

    @sources.on_command
    def on_source(self, spec: dict[str, str]) -> None:
        self.stock.join(spec["key"], spec["node"], "items")

    @drop.on_command
    def on_drop(self, key: str) -> None:
        self.stock.remove(key)


async def test_a_join_map_lane_merges_linked_maps_and_drops_a_link_s_entries() -> None:
    async with open_plane({"/catalog/:id": Catalog, "/store/:id": Store}) as plane:
        await plane.command("/catalog/a", "items", {"update": "apple", "value": 3})
        await plane.command("/catalog/b", "items", {"update": "pear", "value": 5})
        await plane.command("/store/s", "sources", {"key": "a", "node": "/catalog/a"})
        await plane.command("/store/s", "sources", {"key": "b", "node": "/catalog/b"})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"apple": 3, "pear": 5}
        await plane.command("/catalog/b", "items", {"update": "fig", "value": 1})
        await plane.command("/store/s", "drop", "a")
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"pear": 5, "fig": 1}
        downlinks = plane.agent("/store/s").downlinks
        assert [d.node_uri for d in downlinks.values()] == ["/catalog/b"]
        assert isinstance(next(iter(downlinks.values())), MapDownlink)


class Dial(Agent):
    level = ValueLane[float](default=0.5)
    status = ValueLane[str | None](default=None)
    hits = CounterLane()


class Panel(Agent):
    dials = JoinValueLane[str, Any]()
    follow = CommandLane[list[str]]()
    watch = CommandLane[str]()
    levels: list[Any]

    @follow.on_command
    def on_follow(self, spec: list[str]) -> None:
        self.dials.join(spec[0], spec[1], spec[2])

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.levels = []
        self.link = self.downlink(node, "level", on_set=self.level_set)

    def level_set(self, new: Any, old: Any) -> None:
        self.levels.append((new, old))


async def test_links_to_lanes_never_set_see_their_defaults() -> None:
    """A lane never set holds its default under no stamp, which no replica took: a
    downlink showed None, and a join had no entry for it, or kept the entry of the
    key's previous target."""
    async with open_plane({"/dial/:id": Dial, "/panel/:id": Panel}) as plane:
        await plane.command("/dial/set", "status", "on")
        for key, node, lane in (
            ("level", "/dial/d", "level"),
            ("status", "/dial/d", "status"),
            ("hits", "/dial/d", "hits"),
            ("moved", "/dial/set", "status"),
        ):
            await plane.command("/panel/p", "follow", [key, node, lane])
        await plane.command("/panel/p", "watch", "/dial/d")
        await plane.settle()
        assert plane.get("/panel/p", "dials") == {
            "level": 0.5,
            "status": None,
            "hits": 0,
            "moved": "on",
        }
        await plane.command("/panel/p", "follow", ["moved", "/dial/d", "status"])
        await plane.settle()
        assert plane.get("/panel/p", "dials")["moved"] is None
        panel = plane.agent("/panel/p")
        assert isinstance(panel, Panel)
        assert panel.link.get() == 0.5 and panel.levels == [(0.5, None)]


class Gauge(Agent):
    """Follows a dial's level, which no one ever set."""

    seen = ValueLane[list[Any]](default=[])
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "level", on_set=self.level_set)

    def level_set(self, new: Any, old: Any) -> None:
        self.seen.set([*self.seen.get(), [new, old]])


async def test_a_link_to_a_lane_never_set_keeps_its_default_across_a_passivation() -> None:
    """The stored replica held the default under no stamp, which the restore's merge
    took for older than nothing: the downlink came back holding None, and the link,
    still open, was not synced again, so it showed None until the dial was set."""
    async with open_plane({"/dial/:id": Dial, "/gauge/:id": Gauge}, idle_timeout=5) as plane:
        await plane.command("/gauge/g", "watch", "/dial/d")
        await plane.settle()
        await plane.advance(30)
        assert not plane.is_active("/gauge/g")
        (link,) = plane.agent("/gauge/g").downlinks.values()
        assert isinstance(link, ValueDownlink) and link.get() == 0.5
        await plane.command("/dial/d", "level", 0.7)
        await plane.settle()
        assert plane.get("/gauge/g", "seen") == [[0.5, None], [0.7, 0.5]]


async def test_a_reloaded_join_map_lane_drops_a_removed_link_s_value_of_a_shared_key() -> None:
    """Two joined maps share a key; the join shows the value of the one written last.
    Reloaded, the join took the key for the link restored last, so removing the link
    its value came from left that value in the join (instead of the other map's)."""
    async with open_plane({"/catalog/:id": Catalog, "/store/:id": Store}) as plane:
        await plane.command("/catalog/a", "items", {"update": "apple", "value": 1})
        await plane.command("/catalog/b", "items", {"update": "apple", "value": 2})
        for key in "ab":
            await plane.command("/store/s", "sources", {"key": key, "node": f"/catalog/{key}"})
        await plane.settle()
        await plane.command("/catalog/a", "items", {"update": "apple", "value": 3})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"apple": 3}
        assert plane.passivate("/store/s")
        await plane.command("/store/s", "drop", "a")
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"apple": 2}  # b's, as without the reload


class Hits(Agent):
    count = CounterLane()


class Visitor(Agent):
    """Adds to a counter through a link it opens and closes each time."""

    visit = CommandLane[int]()

    @visit.on_command
    def on_visit(self, hits: int) -> None:
        link = self.downlink("/hits/1", "count")
        link.add(hits)
        link.close()


async def test_adds_through_a_link_opened_again_after_a_passivation_all_count() -> None:
    """The new link must not take the closed one's id: a counter link writes under
    its id, and totals started again under the same writer were dropped by the owner's
    merge (it keeps the larger)."""
    async with open_plane({"/hits/:id": Hits, "/visitor/:id": Visitor}) as plane:
        await plane.command("/visitor/1", "visit", 5)
        await plane.settle()
        assert plane.passivate("/visitor/1")
        await plane.command("/visitor/1", "visit", 3)
        await plane.settle()
        assert plane.get("/hits/1", "count") == 8


class Busy(Agent):
    """A device whose status was never set, busy in an async callback until let go."""

    status = ValueLane[str](default="unknown")
    work = CommandLane[None]()
    gate: asyncio.Event | None = None

    @work.on_command
    async def on_work(self, _: None) -> None:
        assert Busy.gate is not None
        await Busy.gate.wait()


class Board(Agent):
    devices = JoinValueLane[str, str]()
    attach = CommandLane[str]()

    @attach.on_command
    def on_attach(self, node: str) -> None:
        self.devices.join(node, node=node, lane="status")


@pytest.mark.parametrize("passivated", [False, True])
async def test_a_join_passivated_before_its_first_sync_still_gets_its_entry(
    passivated: bool,
) -> None:
    """Its target was busy, so the sync came after the board was passivated: reloaded,
    the link counted as synced, and a sync of the target's default changed nothing, so
    the entry never appeared."""
    Busy.gate = asyncio.Event()
    async with open_plane({"/busy/:id": Busy, "/board/:id": Board}) as plane:
        plane.submit("/busy/1", "work", None)
        await plane.command("/board/1", "attach", "/busy/1")
        for _ in range(5):
            await asyncio.sleep(0)  # the board's turn; the busy device's sync waits
        assert plane.get("/board/1", "devices") == {}
        if passivated:
            assert plane.passivate("/board/1")
        Busy.gate.set()
        await plane.settle()
        assert plane.get("/board/1", "devices") == {"/busy/1": "unknown"}


class Follows(Agent):
    """Opens its link in ``on_start``, as SwimOS agents do in ``didStart``."""

    heard = ValueLane[int](default=0)
    poke = CommandLane[None]()

    def on_start(self) -> None:
        self.downlink("/sensor/1", "reading", on_set=self.on_reading)

    def on_reading(self, new: Any, old: Any) -> None:
        self.heard.set(self.heard.get() + 1)

    @poke.on_command
    def on_poke(self, _: None) -> None: ...


def set_reading(sensor: Agent) -> None:
    assert isinstance(sensor, Sensor)
    sensor.reading.set(42.0)


async def test_a_link_opened_in_on_start_is_opened_once_however_often_its_agent_loads() -> None:
    async with open_plane({"/sensor/:id": Sensor, "/follows/:id": Follows}) as plane:
        await plane.command("/follows/1", "poke", None)
        await plane.settle()
        for _ in range(3):
            assert plane.passivate("/follows/1")
            await plane.command("/follows/1", "poke", None)
            await plane.settle()
        assert len(plane.agent("/follows/1").downlinks) == 1
        heard = plane.get("/follows/1", "heard")
        await plane.call("/sensor/1", set_reading)
        await plane.settle()
        assert plane.get("/follows/1", "heard") == heard + 1  # one callback a change


class Hasty(Agent):
    """Opens links whose callbacks cannot be called back as a downlink calls them."""

    open_async = CommandLane[None]()
    open_short = CommandLane[None]()

    @open_async.on_command
    def on_open_async(self, _: None) -> None:
        self.downlink("/sensor/s", "reading", on_set=self.heard)

    @open_short.on_command
    def on_open_short(self, _: None) -> None:
        self.map_downlink("/sensor/s", "tags", on_update=self.one_arg)  # type: ignore[arg-type]

    async def heard(self, new: Any, old: Any) -> None: ...

    def one_arg(self, key: Any) -> None: ...


async def test_a_downlink_callback_that_could_not_run_is_refused_where_the_link_is_made() -> None:
    """An async ``on_set`` was called, its coroutine dropped with a RuntimeWarning, and
    the callback never ran, counted as no failure: lanes refuse one at class definition."""
    async with open_plane({"/sensor/:id": Sensor, "/hasty/:id": Hasty}) as plane:
        await plane.command("/hasty/h", "open_async")
        await plane.command("/hasty/h", "open_short")
        await plane.settle()
        assert plane.statistics().callback_failures == 2
        assert plane.agent("/hasty/h").downlinks == {}
        assert len(plane.links) == 0
        assert "must take (self, key, new, old)" in str(plane.failures.last_error)


class Leaver(Agent):
    """Joins a sensor's reading, and leaves the join once it reads above 100."""

    readings = JoinValueLane[str, Any]()
    follow = CommandLane[str]()

    @follow.on_command
    def on_follow(self, node: str) -> None:
        self.readings.join(node, node=node, lane="reading")

    @readings.on_update
    def on_reading(self, key: str, new: Any, old: Any) -> None:
        if new is not None and new > 100:
            self.readings.remove(key)


async def test_a_subscriber_that_unlinks_in_its_callback_costs_the_next_one_no_change() -> None:
    """A link's delivery runs its subscriber at once when it is idle, inside the owner's
    set; a subscriber that unlinked there shortened the list the owner was going
    through, and the link after it missed that change."""
    async with open_plane({**ROUTES, "/leaver/:id": Leaver}) as plane:
        await plane.command("/leaver/l", "follow", "/sensor/1")
        await plane.settle()
        await plane.command("/watcher/w", "watch", "/sensor/1")
        await plane.settle()
        await plane.command("/sensor/1", "reading", 150.0)
        await plane.settle()
        assert plane.get("/leaver/l", "readings") == {}
        assert ["reading", 150.0, None] in plane.get("/watcher/w", "seen")
        await plane.command("/sensor/1", "reading", 20.0)
        await plane.settle()
        assert plane.get("/watcher/w", "seen")[-1] == ["reading", 20.0, 150.0]
        assert plane.get("/leaver/l", "readings") == {}


class Hits0(Agent):
    """A counter never added to."""

    hits = CounterLane()


class Unset(Agent):
    """A value lane never set (its default holds no stamp)."""

    hits = ValueLane[int | None](default=None)


class CountBoard(Agent):
    """Joins counters; busy in an async callback until let go."""

    counts = JoinValueLane[str, int]()
    attach = CommandLane[str]()
    work = CommandLane[None]()
    gate: asyncio.Event | None = None

    @attach.on_command
    def on_attach(self, node: str) -> None:
        self.counts.join(node, node=node, lane="hits")

    @work.on_command
    async def on_work(self, _: None) -> None:
        assert CountBoard.gate is not None
        await CountBoard.gate.wait()


@pytest.mark.parametrize(("target", "default"), [(Hits0, 0), (Unset, None)])
async def test_a_join_restored_before_its_first_delivery_gets_its_entry(
    target: type[Agent], default: int | None
) -> None:
    """The target was restored (its shard moved) while its first sync waited for the
    busy board: the sync came again marked as a resync, which took the target's
    default as no change, so the entry never appeared, though the link had never been
    synced."""
    CountBoard.gate = asyncio.Event()
    async with open_plane({"/hits/:id": target, "/board/:id": CountBoard}) as plane:
        await plane.command("/board/1", "attach", "/hits/1")
        plane.submit("/board/1", "work", None)
        for _ in range(5):
            await asyncio.sleep(0)  # the counter's sync waits behind the board's work
        assert plane.get("/board/1", "counts") == {}
        plane.forget_agents("/hits/1".__eq__)
        plane.agent("/hits/1")
        CountBoard.gate.set()
        await plane.settle()
        assert plane.get("/board/1", "counts") == {"/hits/1": default}


class Registry(Agent):
    members = MapLane[str, bool]()


class Member(Agent):
    leave = CommandLane[str]()
    quit = CommandLane[str]()

    @leave.on_command
    def on_leave(self, registry: str) -> None:
        link = self.map_downlink(registry, "members")
        link.remove(self.node_uri)  # (in the turn the link opens: not synced yet)

    @quit.on_command
    def on_quit(self, registry: str) -> None:
        del self.map_downlink(registry, "members")[self.node_uri]


@pytest.mark.parametrize("verb", ["leave", "quit"])
async def test_a_remove_through_a_map_downlink_not_synced_yet_reaches_the_owner(
    verb: str,
) -> None:
    """A fresh link's replica is empty until its sync arrives, in a later turn: a remove
    through it found no such key there and did nothing (``del``: raised KeyError), where
    a put goes through."""
    async with open_plane({"/registry/:id": Registry, "/member/:id": Member}) as plane:
        await plane.command("/registry/r", "members", {"update": "/member/1", "value": True})
        await plane.command("/registry/r", "members", {"update": "/member/2", "value": True})
        await plane.command("/member/1", verb, "/registry/r")
        await plane.settle()
        assert plane.failures.count == 0
        assert plane.get("/registry/r", "members") == {"/member/2": True}
