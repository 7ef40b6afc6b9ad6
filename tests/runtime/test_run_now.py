"""Messages an idle agent runs at once (a source's record, a link's delivery): the
turns they skip must not show. No agent is re-entered, none overtakes its own queue,
a deep chain of links does not grow the stack without bound, and a failure is the
failing agent's, not that of the turn it ran inside."""

import asyncio
from typing import Any

from swimstream import Agent, CommandLane, ValueLane
from swimstream.runtime import MemoryAgentStore
from swimstream.streams.connector import TopicPartition
from swimstream.streams.tracking import PartitionTracker, record_ack
from swimstream.testing import open_plane


class Relay(Agent):
    """Follows ``upstream``'s value lane and passes value + 1 on in its own."""

    value = ValueLane[int](default=0)
    follow = CommandLane[str]()
    start = CommandLane[int]()
    inside = False
    overlaps = 0
    limit = 40  # a cycle stops somewhere

    @follow.on_command
    def on_follow(self, node: str) -> None:
        self.downlink(node, "value", on_set=self.changed)

    @start.on_command
    def on_start_value(self, value: int) -> None:
        self.value.set(value)

    def changed(self, new: int, _old: int) -> None:
        if self.inside:  # re-entered while one of its callbacks ran
            type(self).overlaps += 1
        self.inside = True
        try:
            if new < self.limit:
                self.value.set(new + 1)
        finally:
            self.inside = False


async def _link(plane: Any, follower: str, followed: str) -> None:
    await plane.command(follower, "follow", followed)
    await plane.settle()


async def test_a_cycle_of_links_never_reenters_an_agent_and_settles() -> None:
    Relay.overlaps = 0
    async with open_plane({"/relay/:id": Relay}) as plane:
        await _link(plane, "/relay/a", "/relay/b")
        await _link(plane, "/relay/b", "/relay/a")
        assert plane.submit("/relay/a", "start", 1, now=True)
        await plane.settle()
        assert Relay.overlaps == 0
        # a -> b -> a ... each step one more, until one reaches 40
        assert {plane.get("/relay/a", "value"), plane.get("/relay/b", "value")} == {39, 40}


class Link(Relay):
    limit = 10**6


async def test_a_chain_longer_than_the_depth_limit_reaches_its_end() -> None:
    length = 300  # deep enough to exhaust the stack if every delivery ran inside the last
    async with open_plane({"/relay/:id": Link}) as plane:
        for n in range(1, length):
            await _link(plane, f"/relay/{n}", f"/relay/{n - 1}")
        assert plane.get(f"/relay/{length - 1}", "value") == length - 1  # (the syncs)
        plane.submit("/relay/0", "start", 1000, now=True)
        await plane.settle()
        values = [plane.get(f"/relay/{n}", "value") for n in range(length)]
        assert values == [1000 + n for n in range(length)]


class Fragile(Agent):
    """Fails on every change it is sent through its link."""

    follow = CommandLane[str]()
    failures = 0

    @follow.on_command
    def on_follow(self, node: str) -> None:
        self.downlink(node, "value", on_set=self.changed)

    def changed(self, new: int, _old: int) -> None:
        if new:
            raise RuntimeError("no")


async def test_a_subscriber_failing_inside_the_writer_s_turn_fails_alone() -> None:
    async with open_plane({"/relay/:id": Relay, "/fragile/:id": Fragile}) as plane:
        await _link(plane, "/fragile/x", "/relay/a")
        outcome: list[BaseException | None] = []
        plane.submit("/relay/a", "start", 5, outcome.append, now=True)
        await plane.settle()
        assert outcome == [None]  # the record that set the value is not at fault
        assert plane.get("/relay/a", "value") == 5
        assert plane.failures.by_site() == {("/fragile/:id", "/relay/a#value", "changed"): 1}


class Slow(Agent):
    """An async command holds the agent; the order of commands is kept."""

    seen = ValueLane[list[int]](default=[])
    step = CommandLane[int]()
    gate: asyncio.Event

    @step.on_command
    async def on_step(self, n: int) -> None:
        if n == 0:
            await self.gate.wait()
        self.seen.set([*self.seen.get(), n])


async def test_a_busy_agent_queues_what_would_run_at_once_and_keeps_its_order() -> None:
    Slow.gate = asyncio.Event()
    async with open_plane({"/slow/:id": Slow}) as plane:
        await plane.command("/slow/s", "step", -1)
        await plane.settle()
        acks: list[BaseException | None] = []
        for n in range(5):
            plane.submit("/slow/s", "step", n, acks.append, now=True)
        await asyncio.sleep(0.01)
        assert plane.get("/slow/s", "seen") == [-1]  # 0 holds it; 1 to 4 wait their turn
        assert acks == []
        Slow.gate.set()
        await plane.settle()
        assert plane.get("/slow/s", "seen") == [-1, 0, 1, 2, 3, 4]
        assert acks == [None] * 5


class Forwarder(Agent):
    """Sends a step to the slow agent on every change it is sent through its link."""

    follow = CommandLane[str]()

    @follow.on_command
    def on_follow(self, node: str) -> None:
        self.downlink(node, "value", on_set=self.changed)

    def changed(self, new: int, _old: int) -> None:
        if new:  # (not the sync of a lane never set)
            self.command("/slow/s", "step", 0)


async def test_what_a_delivery_run_at_once_causes_is_not_counted_against_the_record() -> None:
    """Links carry state, not events: the record that set a lane is done when its own
    callback is, not when what a subscriber did about the change is."""
    Slow.gate = asyncio.Event()
    routes = {"/relay/:id": Relay, "/forwarder/:id": Forwarder, "/slow/:id": Slow}
    async with open_plane(routes) as plane:
        await _link(plane, "/forwarder/f", "/relay/a")
        tracker = PartitionTracker(TopicPartition("readings", 0))
        record = record_ack(tracker, None, 0, None)  # type: ignore[arg-type]
        plane.submit("/relay/a", "start", 7, record, now=True)
        committable = tracker.committable  # while the step it led to waits for the gate
        Slow.gate.set()
        await plane.settle()
        assert committable == 1
        assert plane.get("/slow/s", "seen") == [0]


async def test_plane_run_now_runs_only_an_idle_agent_in_memory_and_counts_it() -> None:
    """``Plane.run_now``, a source's first try for each record: it does nothing (and
    says so) for an agent not in memory, under another spelling of its URI, without
    the lane, or with work queued, each of which ``submit`` then takes; the commands
    it ran count in the plane's statistics (commands, messages handled) as the queued
    ones do."""
    async with open_plane({"/relay/:id": Relay}) as plane:
        assert not plane.run_now("/relay/a", "start", 1, None)  # (not in memory)
        assert not plane.is_active("/relay/a")
        plane.agent("/relay/a")
        assert not plane.run_now("/relay/a", "start", 1, None)  # (its on_start queued)
        await plane.settle()
        assert not plane.run_now("/relay/a", "nothing", 1, None)
        assert not plane.run_now("/relay/%61", "start", 1, None)  # (not its one spelling)
        before = plane.statistics()
        done: list[BaseException | None] = []
        assert plane.run_now("/relay/a", "start", 7, done.append)
        assert done == [None] and plane.get("/relay/a", "value") == 7
        assert plane.statistics().messages_handled == before.messages_handled + 1
        assert plane.submit("/relay/a", "start", 8)  # (queued)
        assert plane.statistics().commands == before.commands + 2
        await plane.settle()
        assert plane.get("/relay/a", "value") == 8
        assert plane.statistics().messages_handled == before.messages_handled + 2


class Watcher(Agent):
    """Links to ``/relay/a``'s ``start`` command lane and keeps what it sees."""

    seen = ValueLane[list[int]](default=[])
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "start", on_set=self.saw)

    def saw(self, new: int, _old: int | None) -> None:
        self.seen.set([*self.seen.get(), new])


async def test_a_command_run_at_once_on_a_linked_lane_reaches_its_links_and_handler() -> None:
    """A lane something links to is bound: its own ``_command`` runs (its links see the
    command), where an unbound lane's handler only would not show it to them."""
    async with open_plane({"/relay/:id": Relay, "/watcher/:id": Watcher}) as plane:
        await plane.command("/relay/a", "start", 1)
        await plane.command("/watcher/w", "watch", "/relay/a")
        await plane.settle()
        assert plane.run_now("/relay/a", "start", 5, None)
        await plane.settle()
        assert plane.get("/relay/a", "value") == 5
        assert plane.get("/watcher/w", "seen")[-1] == 5


async def test_a_change_for_a_subscriber_reloaded_without_its_links_is_dropped() -> None:
    """A subscriber whose stored record was lost comes back with no downlinks open
    (``Agent._downlinks`` None) while its link end stays: the changes taken at once
    then reach nothing and fail nothing."""
    store = MemoryAgentStore()
    async with open_plane({"/relay/:id": Relay}, store=store) as plane:
        await _link(plane, "/relay/b", "/relay/a")  # b follows a's value
        assert plane.passivate("/relay/b")
        store._records.pop("/relay/b")  # lost: b comes back fresh, with no links
        assert plane.submit("/relay/a", "start", 1, now=True)  # reloads b, queued
        await plane.settle()
        assert plane.submit("/relay/a", "start", 2, now=True)  # b idle: taken at once
        await plane.settle()
        assert plane.get("/relay/a", "value") == 2
        assert plane.get("/relay/b", "value") == 0
        assert plane.statistics().callback_failures == 0
