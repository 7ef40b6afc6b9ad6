"""Passivation: idle and least-recently-used agents unload and come back whole."""

import asyncio
from typing import Any

import pytest

from swimstream import (
    Agent,
    AgentRestoreError,
    CommandLane,
    CounterLane,
    DefinitionError,
    JoinValueLane,
    MapLane,
    ValueLane,
)
from swimstream.crdt.lww_map import TOMBSTONE_TTL_MS
from swimstream.runtime import FakeClock, MemoryAgentStore
from swimstream.testing import open_plane


class Meter(Agent):
    level = ValueLane[float](default=0.0)
    samples = MapLane[int, float](max_entries=3)
    total = CounterLane()
    sample = CommandLane[float]()
    starts = 0

    def on_start(self) -> None:
        Meter.starts += 1

    @sample.on_command
    def on_sample(self, value: float) -> None:
        self.level.set(value)
        self.samples[len(self.samples) + int(self.total.get())] = value
        self.total.add(1)


class Panel(Agent):
    meters = JoinValueLane[str, float]()
    latest = ValueLane[dict[str, float]](default={})
    reminders = ValueLane[list[Any]](default=[])
    add = CommandLane[str]()
    remind = CommandLane[float]()

    @add.on_command
    def on_add(self, node: str) -> None:
        self.meters.join(node, node, "level")

    @remind.on_command
    def on_remind(self, delay: float) -> None:
        self.schedule(delay, self.reminder, "check")

    def reminder(self, label: str) -> None:
        self.reminders.set([*self.reminders.get(), label])

    @meters.on_update
    def on_meter(self, key: str, new: float, old: float | None) -> None:
        self.latest.set(dict(self.meters.items()))


ROUTES = {"/meter/:id": Meter, "/panel/:id": Panel}


async def test_state_links_and_timers_survive_unload_and_reload() -> None:
    store = MemoryAgentStore()
    async with open_plane(ROUTES, store=store) as plane:
        for value in (1.0, 2.0, 3.0, 4.0):
            await plane.command("/meter/m", "sample", value)
        await plane.command("/panel/p", "add", "/meter/m")
        await plane.command("/panel/p", "remind", 30.0)
        await plane.settle()
        samples_before = plane.get("/meter/m", "samples")
        assert len(samples_before) == 3

        assert plane.passivate("/panel/p") and plane.passivate("/meter/m")
        assert not plane.is_active("/panel/p") and not plane.is_active("/meter/m")
        assert len(store) == 2

        # The meter wakes for a command; its change reaches the sleeping panel's link,
        # which wakes the panel too.
        await plane.command("/meter/m", "sample", 5.0)
        await plane.settle()
        assert plane.get("/meter/m", "level") == 5.0
        assert plane.get("/meter/m", "total") == 5
        assert plane.get("/panel/p", "latest") == {"/meter/m": 5.0}
        assert plane.statistics().links == 1

        plane.passivate("/panel/p")
        await plane.advance(31.0)  # the pending timer fires and reloads the panel
        assert plane.get("/panel/p", "reminders") == ["check"]
        panel = plane.agent("/panel/p")
        assert isinstance(panel, Panel)
        assert panel.meters.joined() == {"/meter/m": ("/meter/m", "level")}


async def test_idle_agents_are_passivated_after_the_idle_timeout() -> None:
    async with open_plane(ROUTES, idle_timeout=60.0) as plane:
        await plane.command("/meter/a", "sample", 1.0)
        await plane.command("/meter/b", "sample", 2.0)
        await plane.settle()
        await plane.advance(30.0)
        await plane.command("/meter/b", "sample", 2.5)
        await plane.settle()
        await plane.advance(45.0)
        assert not plane.is_active("/meter/a")
        assert plane.is_active("/meter/b")
        assert plane.get("/meter/a", "level") == 1.0  # comes back on use


async def test_beyond_max_active_the_least_recently_used_go_first() -> None:
    Meter.starts = 0
    async with open_plane(ROUTES, max_active=10) as plane:
        for n in range(25):  # (up to 26, 16 over the limit, no pass is asked before its time)
            await plane.command(f"/meter/{n}", "sample", float(n))
        await plane.settle()
        assert plane.passivate_idle() == 15
        assert plane.statistics().active_agents == 10
        assert all(plane.is_active(f"/meter/{n}") for n in range(15, 25))
        for n in range(25):
            assert plane.get(f"/meter/{n}", "level") == float(n)
        await plane.settle()  # reloaded agents run on_start in their next turn
        assert Meter.starts == 40  # 25 first starts, 15 reloads


async def test_a_burst_of_new_agents_asks_for_a_pass_before_the_next_one_is_due() -> None:
    """Passes run once a second: a burst of new agents (a hand-over's catch-up) held
    2,889 agents in an instance limited to 1,500. Beyond a tenth over the limit a pass
    runs as soon as the routing callback returns, never inside an agent's turn."""
    clock = FakeClock()  # (the timed pass never comes: the clock does not move)
    async with open_plane(ROUTES, max_active=100, clock=clock) as plane:
        most = 0
        for batch in range(20):
            for n in range(50):  # routed in one go, as the source routes a fetched batch
                plane.submit(f"/meter/{batch}-{n}", "sample", 1.0)
            most = max(most, plane.statistics().active_agents)
            await plane.settle()
        assert plane.statistics().active_agents <= 110
        assert most <= 110 + 50, most
        assert plane.statistics().passivations >= 850
        assert plane.get("/meter/0-0", "level") == 1.0  # (passivated, loaded back)


@pytest.mark.parametrize("at_once", [False, True], ids=["queued turn", "run at once"])
async def test_each_turn_makes_its_agent_the_most_recently_used(at_once: bool) -> None:
    """A turn through the mailbox, or a command an idle agent runs at once as a source's
    record does (``Scheduler.run_now``)."""
    clock = FakeClock()
    async with open_plane(ROUTES, idle_timeout=100.0, clock=clock) as plane:
        for n in ("a", "b", "c", "d"):
            await plane.command(f"/meter/{n}", "sample", 1.0)
            await plane.settle()
        clock.advance(50.0)
        plane.note_time()  # (as a source does before each batch it routes)
        for n in ("a", "c"):  # a: the first activated, used again
            if at_once:
                assert plane.submit(f"/meter/{n}", "sample", 2.0, None, True)
            else:
                await plane.command(f"/meter/{n}", "sample", 2.0)
            await plane.settle()
        assert plane.active_node_uris() == ["/meter/b", "/meter/d", "/meter/a", "/meter/c"]
        clock.advance(60.0)  # b and d idle for 110 s, a and c for 60 s
        plane.passivate_idle()  # (unless the plane's housekeeping got there first)
        assert plane.active_node_uris() == ["/meter/a", "/meter/c"]
        assert plane.get("/meter/a", "level") == 2.0


async def test_a_link_s_change_run_at_once_makes_its_subscriber_the_most_recently_used() -> None:
    """A subscriber takes a change at once inside its writer's turn
    (``Scheduler.deliver_now``): that is a turn of its own, as recent as the writer's."""
    clock = FakeClock()
    async with open_plane(ROUTES, idle_timeout=100.0, clock=clock) as plane:
        await plane.command("/panel/p", "add", "/meter/m")
        await plane.settle()
        for n in ("a", "b"):
            await plane.command(f"/meter/{n}", "sample", 1.0)
            await plane.settle()
        clock.advance(50.0)
        plane.note_time()  # (as a source does before each batch it routes)
        assert plane.submit("/meter/m", "sample", 2.0, None, True)  # the panel takes it
        await plane.settle()
        assert plane.active_node_uris() == ["/meter/a", "/meter/b", "/panel/p", "/meter/m"]
        assert plane.get("/panel/p", "latest") == {"/meter/m": 2.0}
        clock.advance(60.0)  # a and b idle for 110 s, the panel and its meter for 60 s
        plane.passivate_idle()
        assert plane.active_node_uris() == ["/panel/p", "/meter/m"]


async def test_agents_used_within_one_noted_time_keep_the_order_of_their_first_turn() -> None:
    """Recency is as coarse as a source's batch (``Scheduler.now``; and a step: see
    ``test_recency_step``): a second turn within it moves its agent no further, so the
    batch's agents stay in the order they were first used in it, all as recent as each
    other."""
    clock = FakeClock()
    async with open_plane(ROUTES, idle_timeout=100.0, clock=clock) as plane:
        for n in ("a", "b", "c"):
            await plane.command(f"/meter/{n}", "sample", 1.0)
            await plane.settle()
        clock.advance(50.0)
        plane.note_time()
        for n in ("a", "b", "a"):
            assert plane.submit(f"/meter/{n}", "sample", 2.0, None, True)
        assert plane.active_node_uris() == ["/meter/c", "/meter/a", "/meter/b"]
        clock.advance(60.0)
        plane.passivate_idle()
        assert plane.active_node_uris() == ["/meter/a", "/meter/b"]


class Forgetful(Agent):
    """Forgets itself in its own turn, as a shard handed over from a callback would."""

    count = ValueLane[int](default=0)
    forget = CommandLane[int]()
    plane: Any = None

    @forget.on_command
    def on_forget(self, value: int) -> None:
        self.count.set(value)
        Forgetful.plane.forget_agents(self.node_uri.__eq__)


@pytest.mark.parametrize("at_once", [False, True], ids=["queued turn", "run at once"])
async def test_an_agent_forgotten_in_its_own_turn_is_not_put_back_as_most_recent(
    at_once: bool,
) -> None:
    """The end of a turn moves its agent to the recent end only if it is still in
    memory (the move takes it out of the plane's agents and puts it back)."""
    clock = FakeClock()
    async with open_plane({"/forgetful/:id": Forgetful}, idle_timeout=100.0, clock=clock) as plane:
        Forgetful.plane = plane
        for node in ("/forgetful/b", "/forgetful/a"):
            await plane.command(node, "count", 1)
            await plane.settle()
        clock.advance(1.0)
        plane.note_time()  # (a new time: the turn below moves its agent)
        if at_once:
            assert plane.submit("/forgetful/a", "forget", 2, None, True)
        else:
            await plane.command("/forgetful/a", "forget", 2)
        await asyncio.wait_for(plane.settle(), 5.0)
        assert plane.active_node_uris() == ["/forgetful/b"]
        await plane.command("/forgetful/b", "count", 3)  # the loop runs on
        await asyncio.wait_for(plane.settle(), 5.0)
        assert plane.get("/forgetful/b", "count") == 3


async def test_a_passivation_pass_notes_the_time_for_the_turns_after_it() -> None:
    """A turn outside any batch or drain (here, a command run at once with no batch
    noted) notes the time of the last pass at the oldest: the plane's housekeeping
    bounds how stale a recency can be."""
    clock = FakeClock()
    async with open_plane(ROUTES, idle_timeout=100.0, clock=clock) as plane:
        for n in ("a", "b"):
            await plane.command(f"/meter/{n}", "sample", 1.0)
            await plane.settle()
        clock.advance(50.0)
        assert plane.passivate_idle() == 0
        assert plane.submit("/meter/a", "sample", 2.0, None, True)
        clock.advance(60.0)  # b idle for 110 s, a for 60 s (since the pass)
        plane.passivate_idle()
        assert plane.active_node_uris() == ["/meter/a"]


class Closer(Agent):
    level = ValueLane[int](default=0)
    stops: list[str] = []

    def on_stop(self) -> None:
        Closer.stops.append(self.node_uri)
        self.level.set(self.level.get() + 100)


async def test_close_stops_every_agent_into_the_store() -> None:
    Closer.stops = []
    store = MemoryAgentStore()
    async with open_plane({"/closer/:id": Closer, **ROUTES}, store=store) as plane:
        plane.agent("/closer/a")
        await plane.command("/meter/m", "sample", 1.0)
        await plane.settle()
    assert Closer.stops == ["/closer/a"]
    assert len(store) == 2  # the meter (default on_stop) is stored too
    async with open_plane({"/closer/:id": Closer, **ROUTES}, store=store) as plane:
        assert plane.get("/closer/a", "level") == 100  # on_stop's change was stored


async def test_close_without_put_away_runs_on_stop_and_leaves_agents_in_memory() -> None:
    Closer.stops = []
    store = MemoryAgentStore()
    async with open_plane({"/closer/:id": Closer, **ROUTES}, store=store) as plane:
        closer = plane.agent("/closer/a")
        await plane.command("/meter/m", "sample", 1.0)
        await plane.settle()
        await plane.close(put_away=False)
        assert Closer.stops == ["/closer/a"]
        assert isinstance(closer, Closer) and closer.level.get() == 100
        assert len(store) == 0  # a durable store's final checkpoint reads them in memory


class Index(Agent):
    """Puts and joins under whatever key a command names (a list stands for a tuple)."""

    entries = MapLane[Any, int]()
    sources = JoinValueLane[Any, float]()
    put = CommandLane[Any]()
    follow = CommandLane[Any]()

    @put.on_command
    def on_put(self, key: Any) -> None:
        self.entries[tuple(key) if isinstance(key, list) else key] = 1

    @follow.on_command
    def on_follow(self, key: Any) -> None:
        self.sources.join(tuple(key) if isinstance(key, list) else key, "/meter/m", "level")


async def test_a_map_key_that_could_not_be_read_back_fails_its_callback_not_the_reload() -> None:
    """A tuple key works in memory, but is stored as a list, which no map can hold: the
    agent would fail to load after passivation or a restart, and every record for it
    after that. The write that brings it is refused instead, and says why."""
    async with open_plane({**ROUTES, "/index/:id": Index}, store=MemoryAgentStore()) as plane:
        for lane, key in (("put", "a"), ("put", [1, 2]), ("follow", [3]), ("put", 7)):
            await plane.command("/index/i", lane, key)
        await plane.settle()
        assert plane.statistics().callback_failures == 2
        assert "map key must be a JSON scalar" in str(plane.failures.last_error)
        assert plane.passivate("/index/i")
        await plane.command("/index/i", "put", None)
        await plane.settle()
        assert plane.get("/index/i", "entries") == {"a": 1, 7: 1, None: 1}


class Gauge(Agent):
    """Version one of an agent: ``level`` is a value lane."""

    level = ValueLane[float](default=0.0)
    set_level = CommandLane[float]()

    @set_level.on_command
    def on_set_level(self, value: float) -> None:
        self.level.set(value)


class GaugeV2(Agent):
    """Version two: ``level`` became a map lane under the same name."""

    level = MapLane[str, float]()
    set_level = CommandLane[float]()

    @set_level.on_command
    def on_set_level(self, value: float) -> None:
        self.level["now"] = value


async def test_an_agent_whose_lane_changed_kind_stays_unloaded_and_keeps_its_stored_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Loading a value lane's stored state into a map lane used to fail on an assert,
    with the agent left half-built in memory: the next command overwrote what was stored."""
    store = MemoryAgentStore()
    async with open_plane({"/gauge/:id": Gauge}, store=store) as plane:
        await plane.command("/gauge/g", "set_level", 7.0)
        await plane.settle()
    stored = dict(store.load("/gauge/g") or {})
    async with open_plane({"/gauge/:id": GaugeV2}, store=store) as plane:
        for _ in range(2):
            with pytest.raises(AgentRestoreError, match=r"lane 'level' \(MapLane\) was stored"):
                await plane.command("/gauge/g", "set_level", 8.0)
        with pytest.raises(AgentRestoreError):
            plane.get("/gauge/g", "level")
        assert not plane.is_active("/gauge/g")
        await plane.command("/gauge/other", "set_level", 1.0)  # the rest runs on
        await plane.settle()
        assert plane.get("/gauge/other", "level") == {"now": 1.0}
    assert store.load("/gauge/g") == stored
    assert caplog.text.count("agent /gauge/g cannot be restored") == 1  # logged once


class Tally(Agent):
    count = CounterLane()
    state = ValueLane[Any](default=None)
    via_link = CommandLane[str]()

    @via_link.on_command
    def on_via_link(self, node: str) -> None:
        self.downlink(node, "count").add(10)  # a second writer of that counter


class Board(Agent):
    rows = JoinValueLane[str, Any]()
    follow = CommandLane[list[str]]()

    @follow.on_command
    def on_follow(self, spec: list[str]) -> None:
        self.rows.join(spec[0], spec[1], spec[2])


async def test_a_join_value_lane_follows_its_targets_after_reload() -> None:
    """A join-value link's replica was not stored: reloaded empty, it took the next
    delivery of a counter with two writers for the whole count (one writer's totals),
    and missed a value lane set back to None (no change from its empty replica)."""
    routes = {"/tally/:id": Tally, "/board/:id": Board}
    async with open_plane(routes, store=MemoryAgentStore()) as plane:
        await plane.command("/tally/t", "count", 5)
        await plane.command("/tally/w", "via_link", "/tally/t")
        await plane.command("/tally/t", "state", 3)
        await plane.command("/board/b", "follow", ["count", "/tally/t", "count"])
        await plane.command("/board/b", "follow", ["state", "/tally/t", "state"])
        await plane.settle()
        assert plane.get("/board/b", "rows") == {"count": 15, "state": 3}
        assert plane.passivate("/board/b")
        await plane.command("/tally/t", "count", 1)
        await plane.command("/tally/t", "state", None)
        await plane.settle()
        assert plane.get("/board/b", "rows") == {"count": 16, "state": None}


class Feed(Agent):
    items = MapLane[str, int]()
    put = CommandLane[str]()
    drop = CommandLane[str]()

    @put.on_command
    def on_put(self, key: str) -> None:
        self.items[key] = 1

    @drop.on_command
    def on_drop(self, key: str) -> None:
        self.items.remove(key)


class Reader(Agent):
    """Mirrors a feed's keys through a map downlink."""

    keys = ValueLane[list[str]](default=[])
    follow = CommandLane[str]()

    @follow.on_command
    def on_follow(self, node: str) -> None:
        self.map_downlink(node, "items", on_update=self.changed, on_remove=self.gone)

    def changed(self, key: str, new: int, old: int | None) -> None:
        self.keys.set(sorted({*self.keys.get(), key}))

    def gone(self, key: str, old: int) -> None:
        self.keys.set([k for k in self.keys.get() if k != key])


async def test_a_restored_replica_drops_what_its_owner_removed_while_it_was_stored() -> None:
    # The owner's tombstone of the remove is long forgotten when the reader comes back
    # (longer ago than the TTL, and many removes since), so only the sync can tell it.
    routes = {"/feed/:id": Feed, "/reader/:id": Reader}
    store = MemoryAgentStore()
    async with open_plane(routes, store=store) as plane:
        for key in ("a", "b", "c"):
            await plane.command("/feed/f", "put", key)
        await plane.command("/reader/r", "follow", "/feed/f")
        await plane.settle()
        assert plane.get("/reader/r", "keys") == ["a", "b", "c"]
    clock = FakeClock()
    async with open_plane(routes, store=store, clock=clock) as plane:  # a restart
        await plane.command("/feed/f", "drop", "b")  # the reader is not loaded: no link
        await plane.advance(TOMBSTONE_TTL_MS / 1000 + 1)
        for n in range(100):
            await plane.command("/feed/f", "put", f"x{n}")
            await plane.command("/feed/f", "drop", f"x{n}")
        await plane.settle()
        feed = plane.agent("/feed/f")
        assert isinstance(feed, Feed)
        assert "b" not in dict(feed.items._map.snapshot().tombstones)  # forgotten
        assert plane.get("/reader/r", "keys") == ["a", "b", "c"]  # loads it, as stored
        await plane.settle()  # its link's sync arrives
        assert plane.get("/reader/r", "keys") == ["a", "c"]


class Histogram(Agent):
    buckets = ValueLane[dict[int, int]](default={})
    count = CommandLane[int]()

    @count.on_command
    def on_count(self, bucket: int) -> None:
        buckets = dict(self.buckets.get())
        buckets[bucket] = buckets.get(bucket, 0) + 1
        self.buckets.set(buckets)


async def test_a_value_keyed_by_numbers_comes_back_as_it_was() -> None:
    """Stored with its number keys, a dict used to be refused when loaded: the agent
    could not load again after its first passivation."""
    async with open_plane({"/histogram/:id": Histogram}, store=MemoryAgentStore()) as plane:
        await plane.command("/histogram/h", "count", 13)
        await plane.settle()
        assert plane.passivate("/histogram/h")
        await plane.command("/histogram/h", "count", 13)
        await plane.settle()
        histogram = plane.agent("/histogram/h")
        assert isinstance(histogram, Histogram)
        assert histogram.buckets.get() == {13: 2}


class Thermostat(Agent):
    status = ValueLane[int](default=0)
    report = CommandLane[int]()
    forget = CommandLane[None]()
    set_to = CommandLane[int]()

    @set_to.on_command
    def on_set_to(self, value: int) -> None:
        self.status.set(value)

    @report.on_command
    def on_report(self, value: int) -> None:
        self.status = value  # type: ignore[assignment]  # meant self.status.set(value)

    @forget.on_command
    def on_forget(self, _: None) -> None:
        del self.status


async def test_assigning_to_a_lane_fails_its_callback_and_leaves_the_lane_in_place() -> None:
    """The assignment used to replace the lane with the value, silently: the agent
    could then never be stored, and its passivation ended the plane's housekeeping."""
    errors: list[BaseException | None] = []
    async with open_plane({"/thermostat/:id": Thermostat}, idle_timeout=5.0) as plane:
        plane.submit("/thermostat/t", "report", 21, errors.append)
        await plane.settle()
        assert isinstance(errors[0], DefinitionError)
        assert str(errors[0]) == (
            "Thermostat.status is a lane, not an attribute to assign: "
            "change it with self.status.set(...)"
        )
        await plane.advance(20.0)
        assert not plane.is_active("/thermostat/t")
        assert plane.get("/thermostat/t", "status") == 0


async def test_deleting_a_lane_fails_its_callback_and_keeps_the_lane_s_state() -> None:
    """``del self.status`` used to unbind the lane: its state was gone, and later
    writes went to a fresh lane that reads over HTTP and links never saw."""
    errors: list[BaseException | None] = []
    async with open_plane({"/thermostat/:id": Thermostat}) as plane:
        await plane.command("/thermostat/t", "set_to", 21)
        plane.submit("/thermostat/t", "forget", None, errors.append)
        await plane.command("/thermostat/t", "set_to", 22)
        await plane.settle()
        assert isinstance(errors[0], DefinitionError)
        assert "Thermostat.status is a lane, not an attribute to delete" in str(errors[0])
        assert plane.get("/thermostat/t", "status") == 22


async def test_an_agent_that_cannot_be_stored_stays_in_memory_and_the_others_passivate() -> None:
    """Any failure to store one agent (not only a value the codec refuses) used to end
    the housekeeping that passivates every agent, and then the plane's close."""
    async with open_plane({"/thermostat/:id": Thermostat, **ROUTES}, idle_timeout=5.0) as plane:
        # Broken past what ``Agent.__setattr__`` refuses: a lane that is no lane.
        await plane.call("/thermostat/t", lambda agent: agent._namespace.update(status=5))
        await plane.command("/meter/m", "sample", 1.0)
        await plane.settle()
        await plane.advance(20.0)
        assert plane.is_active("/thermostat/t")
        assert not plane.is_active("/meter/m")
        assert set(plane.failures.by_site()) == {("/thermostat/:id", "lifecycle", "passivate")}
        assert isinstance(plane.failures.last_error, AttributeError)


class Flusher(Agent):
    """Its ``on_stop`` sends its buffer to its own lane before it goes."""

    flushed = ValueLane[int](default=0)
    flush = CommandLane[None]()
    stops = 0

    @flush.on_command
    def on_flush(self, _: None) -> None:
        self.flushed.set(self.flushed.get() + 1)

    def on_stop(self) -> None:
        Flusher.stops += 1
        self.command(self.node_uri, "flush")


async def test_an_agent_whose_on_stop_commands_itself_goes_once_that_work_is_done() -> None:
    """``on_stop`` ran at every passivation try, each time queueing work for the agent
    itself, which kept it in memory: it never went, and its ``on_stop`` ran every
    housekeeping pass without an ``on_start`` between."""
    Flusher.stops = 0
    async with open_plane({"/flusher/:id": Flusher}, idle_timeout=1.0) as plane:
        plane.agent("/flusher/f")
        await plane.settle()
        for _ in range(10):
            await plane.advance(1.0)
        assert not plane.is_active("/flusher/f")
        assert Flusher.stops == 1
        assert plane.get("/flusher/f", "flushed") == 1
