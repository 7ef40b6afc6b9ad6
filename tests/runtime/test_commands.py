"""Commands: routing, bad addresses, failing callbacks, atomicity and backpressure."""

import asyncio
import logging
from typing import Any

import pytest

from swimstream import (
    Agent,
    CallbackError,
    CommandLane,
    CounterLane,
    DefinitionError,
    LaneNotFoundError,
    MapLane,
    NodeNotFoundError,
    ValueLane,
)
from swimstream.runtime import Plane
from swimstream.testing import open_plane


class Account(Agent):
    balance = ValueLane[int](default=0)
    log = MapLane[int, int]()
    deposit = CommandLane[int]()
    hits = CounterLane()

    @deposit.on_command
    def on_deposit(self, amount: int) -> None:
        if amount < 0:
            raise ValueError(f"negative deposit {amount}")
        self.balance.set(self.balance.get() + amount)
        self.log[len(self.log)] = amount


class Relay(Agent):
    forward = CommandLane[dict[str, Any]]()

    @forward.on_command
    def on_forward(self, message: dict[str, Any]) -> None:
        self.command(message["to"], message["lane"], message["value"])


ROUTES = {"/account/:id": Account, "/relay/:id": Relay}


async def test_commands_reach_the_agent_named_by_the_uri_and_create_it() -> None:
    async with open_plane(ROUTES) as plane:
        await plane.command("/account/a", "deposit", 5)
        await plane.command("/account/a", "deposit", 7)
        await plane.command("/account/b", "deposit", 1)
        await plane.settle()
        assert plane.get("/account/a", "balance") == 12
        assert plane.get("/account/a", "log") == {0: 5, 1: 7}
        assert plane.get("/account/b", "balance") == 1
        assert plane.agent("/account/a").params == {"id": "a"}


async def test_commands_to_value_map_and_counter_lanes_change_them_directly() -> None:
    async with open_plane(ROUTES) as plane:
        await plane.command("/account/a", "balance", 40)
        await plane.command("/account/a", "log", {"update": 3, "value": 9})
        await plane.command("/account/a", "hits", 2)
        await plane.settle()
        assert plane.get("/account/a", "balance") == 40
        assert plane.get("/account/a", "log") == {3: 9}
        assert plane.get("/account/a", "hits") == 2


async def test_a_map_command_whose_key_is_a_json_list_or_object_names_the_key_rule() -> None:
    """JSON gives lists and objects, which no dict can hash: the command fails saying
    what a map key must be, not "unhashable type"."""
    errors: list[BaseException | None] = []
    async with open_plane(ROUTES) as plane:
        for command in ({"update": [1], "value": 2}, {"update": {"a": 1}}, {"remove": [1]}):
            plane.submit("/account/a", "log", command, errors.append)
        await plane.settle()
        assert plane.get("/account/a", "log") == {}
    assert len(errors) == 3
    for error in errors:
        assert isinstance(error, CallbackError)
        cause = error.__cause__
        assert isinstance(cause, TypeError) and "map key must be a JSON scalar" in str(cause)
        assert cause.__suppress_context__  # no "during handling of unhashable type" chain


async def test_unknown_route_and_unknown_lane_are_named() -> None:
    async with open_plane(ROUTES) as plane:
        with pytest.raises(NodeNotFoundError, match="/nowhere/1"):
            await plane.command("/nowhere/1", "deposit", 1)
        with pytest.raises(LaneNotFoundError, match="no lane 'withdraw'"):
            await plane.command("/account/a", "withdraw", 1)


async def test_a_command_or_read_of_an_unknown_lane_creates_no_agent() -> None:
    """The agent was created, and its ``on_start`` run, before the lane was refused: a
    typo in an HTTP POST made a twin nothing else would ever address."""
    async with open_plane(ROUTES) as plane:
        refused = r"agent /account/a \(Account\) has no lane 'withdraw'"
        with pytest.raises(LaneNotFoundError, match=refused):
            plane.submit("/account/a", "withdraw", 1)
        with pytest.raises(LaneNotFoundError, match="no lane 'balanse'"):
            plane.get("/account/b", "balanse")
        assert plane.active_agents == 0
        assert plane.statistics().activations == 0
        await plane.command("/account/a", "deposit", 1)
        await plane.settle()
        with pytest.raises(LaneNotFoundError, match="no lane 'withdraw'"):
            plane.submit("/account/a", "withdraw", 1)  # (an agent in memory: the same)
        assert plane.active_node_uris() == ["/account/a"]


BASE_CLASS_REFUSED = (
    "route '/x/:id' maps to Agent, the base class of agents, not an agent: "
    "route to a subclass of Agent that declares the lanes"
)


def test_a_plane_refuses_a_route_to_the_base_agent_class() -> None:
    """`swimstream check` refused it, but a plane built directly took it and failed
    only at the first command, saying the agent had no such lane."""
    with pytest.raises(DefinitionError) as refused:
        Plane({"/x/:id": Agent, "/account/:id": Account})
    assert str(refused.value) == BASE_CLASS_REFUSED


async def test_the_test_plane_refuses_a_route_to_the_base_agent_class() -> None:
    with pytest.raises(DefinitionError) as refused:
        async with open_plane({"/x/:id": Agent}):
            pass
    assert str(refused.value) == BASE_CLASS_REFUSED


async def test_a_raising_callback_is_logged_counted_and_the_agent_keeps_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors: list[BaseException | None] = []
    async with open_plane(ROUTES) as plane:
        plane.submit("/account/a", "deposit", 10, errors.append)
        plane.submit("/account/a", "deposit", -1, errors.append)
        plane.submit("/account/a", "deposit", 5, errors.append)
        with caplog.at_level(logging.ERROR, logger="swimstream.agent"):
            await plane.settle()
        assert plane.get("/account/a", "balance") == 15
        assert plane.statistics().callback_failures == 1
        assert errors[0] is None and errors[2] is None
        assert isinstance(errors[1], CallbackError)
        assert isinstance(errors[1].__cause__, ValueError)
        record = next(r for r in caplog.records if r.name == "swimstream.agent")
        assert "/account/a" in record.getMessage() and "'deposit'" in record.getMessage()
        assert "negative deposit -1" in record.getMessage()


async def test_a_command_a_map_or_counter_lane_rejects_names_the_command_not_on_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Those lanes have no ``on_command``: blaming it sent readers to look for one."""
    errors: list[BaseException | None] = []
    async with open_plane(ROUTES) as plane:
        plane.submit("/account/a", "log", {"bogus": 1}, errors.append)
        plane.submit("/account/a", "hits", "lots", errors.append)
        plane.submit("/account/a", "deposit", -1, errors.append)
        with caplog.at_level(logging.ERROR, logger="swimstream.agent"):
            await plane.settle()
    assert [str(error) for error in errors] == [
        "command to lane 'log' on agent /account/a failed",
        "command to lane 'hits' on agent /account/a failed",
        "on_command of lane 'deposit' on agent /account/a raised",
    ]
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.agent"]
    assert lines[0].startswith(
        "command to lane 'log' on agent /account/a failed: ValueError: unknown map command"
    )
    assert lines[1].startswith("command to lane 'hits' on agent /account/a failed: ValueError")
    assert lines[2].startswith("on_command of lane 'deposit' on agent /account/a failed")


class Shaky(Agent):
    """Fails in every place that is not a lane: start, stop, a timer, a downlink."""

    level = ValueLane[int](default=0)

    def on_start(self) -> None:
        if self.node_uri == "/shaky/watcher":
            self.downlink("/shaky/source", "level", on_set=self.on_level)
        self.schedule(1.0, self.tick)
        raise RuntimeError("no start")

    def on_stop(self) -> None:
        raise RuntimeError("no stop")

    def tick(self) -> None:
        raise RuntimeError("no tick")

    def on_level(self, new: int, old: int | None) -> None:
        raise RuntimeError("no level")


async def test_failures_outside_lanes_are_named_as_what_they_are(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logs called a start or a downlink's callback a lane: ``callback on_start of lane
    'lifecycle'``, ``callback on_level of lane '/shaky/source#level'``."""
    with caplog.at_level(logging.ERROR, logger="swimstream.agent"):
        async with open_plane({"/shaky/:id": Shaky}) as plane:
            plane.agent("/shaky/watcher")
            await plane.settle()
            await plane.advance(1.0)
    # (the source's failures share the watcher's sites: held back, logged at the close)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "on_start of agent /shaky/watcher failed",
        "downlink callback on_level (link to /shaky/source#level) of agent /shaky/watcher failed",
        "timer callback tick of agent /shaky/watcher failed",
        "on_stop of agent /shaky/watcher failed",
        "on_start of agent /shaky/source failed",
        "timer callback tick of agent /shaky/source failed",
        "on_stop of agent /shaky/source failed",
    ]


async def test_an_agent_commanding_an_unknown_node_fails_that_callback_only() -> None:
    async with open_plane(ROUTES) as plane:
        await plane.command("/relay/r", "forward", {"to": "/ghost/1", "lane": "x", "value": 1})
        await plane.command(
            "/relay/r", "forward", {"to": "/account/a", "lane": "deposit", "value": 3}
        )
        await plane.settle()
        assert plane.statistics().callback_failures == 1
        assert isinstance(plane.failures.last_error, NodeNotFoundError)
        assert plane.get("/account/a", "balance") == 3


class Careful(Agent):
    """Detects interleaving: a second callback entering before the first left."""

    step = CommandLane[int]()
    trace = ValueLane[list[int]](default=[])
    inside = False
    overlaps = 0

    @step.on_command
    async def on_step(self, n: int) -> None:
        if self.inside:
            Careful.overlaps += 1
        self.inside = True
        await asyncio.sleep(0)  # give the loop every chance to interleave
        await asyncio.sleep(0)
        self.trace.set([*self.trace.get(), n])
        self.inside = False


async def test_concurrent_commands_to_one_agent_never_interleave_inside_a_callback() -> None:
    Careful.overlaps = 0
    async with open_plane({"/careful/:id": Careful}) as plane:

        async def sender(offset: int) -> None:
            for n in range(50):
                await plane.command("/careful/x", "step", offset + n)
                await asyncio.sleep(0)

        await asyncio.gather(*(sender(1000 * s) for s in range(8)))
        await plane.settle()
        trace = plane.get("/careful/x", "trace")
        assert Careful.overlaps == 0
        assert sorted(trace) == sorted(1000 * s + n for s in range(8) for n in range(50))
        for s in range(8):  # each sender's commands stay in order
            mine = [t for t in trace if t // 1000 == s]
            assert mine == sorted(mine)


async def test_a_full_mailbox_asks_the_sender_to_wait() -> None:
    async with open_plane(ROUTES, mailbox_capacity=8) as plane:
        accepted = [plane.submit("/account/a", "deposit", 1) for _ in range(10)]
        # the new agent's on_start is queued first and takes one of the 8 places
        assert accepted == [True] * 6 + [False] * 4
        await plane.wait_for_room("/account/a")
        mailbox = plane._cells["/account/a"].mailbox
        assert mailbox is None or len(mailbox) < 4
        await plane.settle()
        assert plane.get("/account/a", "balance") == 10


class Waiting(Agent):
    """Waits on I/O (an event the test sets) in every command."""

    io = CommandLane[int]()
    gate: asyncio.Event | None = None

    @io.on_command
    async def on_io(self, _: int) -> None:
        assert Waiting.gate is not None
        await Waiting.gate.wait()


async def test_the_queue_depth_counts_the_backlog_behind_an_agent_busy_with_io() -> None:
    """The mailbox-depth gauge read 0 exactly when a backlog built behind I/O."""
    Waiting.gate = asyncio.Event()
    async with open_plane({"/waiting/:id": Waiting}, mailbox_capacity=8) as plane:
        for n in range(20):
            plane.submit("/waiting/1", "io", n)
        await asyncio.sleep(0.01)  # the first command is waiting; 19 are queued behind
        try:
            assert plane.queued() == 19
        finally:
            Waiting.gate.set()
        await plane.settle()
        assert plane.queued() == 0


class Recent(Agent):
    """Keeps the two newest readings; its ``on_update`` refuses negative ones."""

    readings = MapLane[str, int](max_entries=2)
    events: list[tuple[str, str, int]] = []

    @readings.on_update
    def on_reading(self, key: str, new: int, old: int | None) -> None:
        Recent.events.append(("update", key, len(self.readings)))
        if new < 0:
            raise ValueError(f"negative reading {new}")

    @readings.on_remove
    def on_evicted(self, key: str, old: int) -> None:
        Recent.events.append(("remove", key, len(self.readings)))


class Writer(Agent):
    """Writes to a ``Recent`` through its link (the owner applies the put as it arrives)."""

    write = CommandLane[str]()

    @write.on_command
    def on_write(self, key: str) -> None:
        self.map_downlink("/recent/r", "readings").put(key, 9)


async def test_a_bounded_map_evicts_before_on_update_which_sees_it_within_its_bound() -> None:
    """``on_update`` ran before the eviction: it saw one entry too many, and when it
    raised, the map stayed over its bound, stored and synced so."""
    Recent.events = []
    async with open_plane({"/recent/:id": Recent, "/writer/:id": Writer}) as plane:
        for key, value in (("a", 1), ("b", 2), ("c", 3), ("d", -4)):
            await plane.command("/recent/r", "readings", {"update": key, "value": value})
        await plane.settle()
        assert plane.statistics().callback_failures == 1
        assert plane.get("/recent/r", "readings") == {"c": 3, "d": -4}
        await plane.command("/writer/w", "write", "e")
        await plane.settle()
        assert plane.get("/recent/r", "readings") == {"d": -4, "e": 9}
    assert Recent.events == [
        ("update", "a", 1),
        ("update", "b", 2),
        ("remove", "a", 2),
        ("update", "c", 2),
        ("remove", "b", 2),
        ("update", "d", 2),
        ("remove", "c", 2),
        ("update", "e", 2),
    ]
