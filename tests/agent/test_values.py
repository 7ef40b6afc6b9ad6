"""What lanes hold: values the store gives back, and each agent's own objects.

A value the store cannot hold was taken by its lane and then lost at the agent's next
load: the agent could not load at all, or came back without it. A value of a kind the
store cannot hold (bytes, a set, an object, an integer beyond 64 bits) is refused as it
is written now, so its callback fails (its record goes to the dead letters with the
reason) and the lane keeps what it had. What a list or an object holds is checked when
it is stored, where the walk costs once per checkpoint and not once per write: an agent
holding such a value is not passivated, and a checkpoint leaves the value out, each
saying why. And a lane's value is a Python object that code may change in place: agents
must not share one (a declared default was shared), and an object changed in place and
set again must reach the lane's links as a change.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from swimstream import Agent, CommandLane, CounterLane, MapLane, ValueLane
from swimstream.runtime import Plane
from swimstream.testing import open_plane


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


REFUSED_WHEN_WRITTEN: dict[str, Any] = {
    "bytes": b"raw",
    "a set": {1, 2},
    "a datetime": datetime.datetime(2026, 12, 6),
    "an integer beyond 64 bits": 2**70,
}

KEPT_OUT_WHEN_STORED: dict[str, Any] = {
    "bytes inside": {"payload": [b"x"]},
    "a tuple key": {"inner": {(1, 2): 3}},
    "an integer beyond 64 bits inside": {"n": 2**70},
    "1,001 levels": nested(1_001),
}

FINE = {"a": [1, 2.5, None, True, "x", {"7": (3, 4)}], "n": -(2**63), 13: 2**64 - 1}
"""JSON values, integer keys, integers at both ends of 64 bits, and a tuple."""

VALUES = {**REFUSED_WHEN_WRITTEN, **KEPT_OUT_WHEN_STORED, "fine": FINE}


class Holder(Agent):
    value = ValueLane[Any](default="start")
    entries = MapLane[str, Any]()
    count = CounterLane()
    set = CommandLane[str]()
    put = CommandLane[str]()
    add = CommandLane[Any]()

    @set.on_command
    def on_set(self, name: str) -> None:
        self.value.set(VALUES[name])

    @put.on_command
    def on_put(self, name: str) -> None:
        self.entries.put("k", VALUES[name])

    @add.on_command
    def on_add(self, delta: Any) -> None:
        self.count.add(delta)


async def refused(plane: Plane, lane: str, value: Any) -> str:
    """What the callback that wrote ``value`` failed with."""
    failed = plane.failures.count
    await plane.command("/h/1", lane, value)
    await plane.settle()
    error = plane.failures.last_error
    assert plane.failures.count == failed + 1 and isinstance(error, TypeError)
    return str(error)


@pytest.mark.parametrize("name", list(REFUSED_WHEN_WRITTEN))
async def test_a_value_of_a_kind_the_store_cannot_hold_is_refused_when_written(
    name: str,
) -> None:
    async with open_plane({"/h/:id": Holder}, idle_timeout=5) as plane:
        said = await refused(plane, "set", name)
        assert said.startswith("lane 'value' of /h/1 cannot hold this value: ")
        said = await refused(plane, "put", name)
        assert said.startswith("lane 'entries' of /h/1 cannot hold this value: ")
        await plane.advance(30)
        assert not plane.is_active("/h/1")  # passivated; it loads again whole
        assert (plane.get("/h/1", "value"), plane.get("/h/1", "entries")) == ("start", {})


@pytest.mark.parametrize("name", list(KEPT_OUT_WHEN_STORED))
async def test_an_agent_holding_what_the_store_cannot_give_back_stays_in_memory(
    name: str,
) -> None:
    """(It was stored, and the agent could not load again: every record for it went to
    the dead letters.)"""
    async with open_plane({"/h/:id": Holder}, idle_timeout=5) as plane:
        await plane.command("/h/1", "set", name)
        await plane.settle()
        assert plane.failures.count == 0
        await plane.advance(30)
        assert plane.is_active("/h/1")  # not passivated: what it holds stays
        assert plane.get("/h/1", "value") is VALUES[name]
        assert "cannot encode RegisterSnapshot: " in str(plane.failures.last_error)


async def test_what_is_wrong_with_a_value_is_named() -> None:
    async with open_plane({"/h/:id": Holder}, idle_timeout=5) as plane:
        assert (await refused(plane, "set", "bytes")).endswith("bytes is not a JSON value: b'raw'")
        assert (await refused(plane, "set", "an integer beyond 64 bits")).endswith(
            f"the integer {2**70} is beyond 64 bits"
        )
        for name, problem in (
            ("a tuple key", "an object key must be a JSON scalar, not tuple (1, 2)"),
            ("1,001 levels", "a value nested over 1000 levels"),
        ):
            await plane.command(f"/h/{name}", "set", name)
            await plane.advance(30)
            assert str(plane.failures.last_error).endswith(problem)


@pytest.mark.parametrize("delta", [0.5, "3", True, 2**64])
async def test_a_counter_adds_integers_within_64_bits_only(delta: Any) -> None:
    """A float total was stored, and the agent could not load again."""
    async with open_plane({"/h/:id": Holder}, idle_timeout=5) as plane:
        await plane.command("/h/1", "add", 2)
        said = await refused(plane, "add", delta)
        assert said.endswith(f"the counter's delta must be an integer, not {delta!r}")
        await plane.advance(30)
        assert not plane.is_active("/h/1")
        assert plane.get("/h/1", "count") == 2


async def test_tuples_and_what_json_holds_are_taken_and_come_back() -> None:
    """A tuple comes back from the store as a list, as from JSON."""
    async with open_plane({"/h/:id": Holder}, idle_timeout=5) as plane:
        await plane.command("/h/1", "set", "fine")
        await plane.command("/h/1", "put", "fine")
        await plane.settle()
        assert plane.failures.count == 0
        await plane.advance(30)
        assert not plane.is_active("/h/1")
        back = {"a": [1, 2.5, None, True, "x", {"7": [3, 4]}], "n": -(2**63), 13: 2**64 - 1}
        assert plane.get("/h/1", "value") == back
        assert plane.get("/h/1", "entries") == {"k": back}


class Tally(Agent):
    """Changes its value in place, as Python code does, then sets it again."""

    seen = ValueLane[dict[str, int]](default={})
    note = CommandLane[str]()

    @note.on_command
    def on_note(self, word: str) -> None:
        seen = self.seen.get()
        seen[word] = seen.get(word, 0) + 1
        self.seen.set(seen)


class Watcher(Agent):
    changes = ValueLane[list[dict[str, int]]](default=[])
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "seen", on_set=self.changed)

    def changed(self, new: dict[str, int], old: dict[str, int]) -> None:
        self.changes.set([*self.changes.get(), dict(new)])


async def test_each_agent_has_its_own_default_to_change_in_place() -> None:
    """The declared default was one object: changed in place by one agent, it was every
    agent's value, and the class's default for those made later."""
    async with open_plane({"/tally/:id": Tally}) as plane:
        await plane.command("/tally/a", "note", "x")
        await plane.settle()
        assert plane.get("/tally/b", "seen") == {}
        assert plane.get("/tally/a", "seen") == {"x": 1}
        assert Tally.seen._spec.options["default"] == {}


async def test_a_value_changed_in_place_and_set_again_reaches_the_links() -> None:
    """The link's replica held the owner's very object, so the owner's next set compared
    it with itself, found nothing changed, and the subscriber's callback never ran."""
    routes = {"/tally/:id": Tally, "/watcher/:id": Watcher}
    async with open_plane(routes) as plane:
        await plane.command("/tally/a", "note", "x")
        await plane.command("/watcher/1", "watch", "/tally/a")
        await plane.settle()
        for word in ("x", "y"):
            await plane.command("/tally/a", "note", word)
            await plane.settle()
        assert plane.get("/watcher/1", "changes") == [
            {"x": 1},
            {"x": 2},
            {"x": 2, "y": 1},
        ]


class Lists(Agent):
    """Keeps a list per key, appended to in place."""

    lists = MapLane[str, list[int]]()
    append = CommandLane[int]()

    @append.on_command
    def on_append(self, n: int) -> None:
        items = self.lists.get("k") or []
        items.append(n)
        self.lists.put("k", items)


class ListWatcher(Agent):
    seen = ValueLane[list[list[int]]](default=[])
    watch = CommandLane[str]()
    write = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.map_downlink(node, "lists", on_update=self.updated)

    @write.on_command
    def on_write(self, node: str) -> None:
        self.map_downlink(node, "lists", on_update=self.updated).put("bad", b"x")

    def updated(self, key: str, new: list[int], old: list[int] | None) -> None:
        self.seen.set([*self.seen.get(), list(new)])


async def test_a_map_entry_changed_in_place_and_put_again_reaches_the_links() -> None:
    async with open_plane({"/lists/:id": Lists, "/watcher/:id": ListWatcher}) as plane:
        await plane.command("/lists/a", "append", 1)
        await plane.command("/watcher/1", "watch", "/lists/a")
        await plane.settle()
        for n in (2, 3):
            await plane.command("/lists/a", "append", n)
            await plane.settle()
        assert plane.get("/watcher/1", "seen") == [[1], [1, 2], [1, 2, 3]]


async def test_a_write_through_a_link_is_refused_as_a_write_to_the_lane() -> None:
    async with open_plane({"/lists/:id": Lists, "/watcher/:id": ListWatcher}) as plane:
        await plane.command("/watcher/1", "write", "/lists/a")
        await plane.settle()
        assert str(plane.failures.last_error) == (
            "a write through the link to /lists/a#lists cannot hold it: bytes is not a JSON "
            "value: b'x'"
        )
        assert plane.get("/lists/a", "lists") == {}


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (2**64, f"map key {2**64} is beyond 64 bits"),
        (-(2**63) - 1, f"map key {-(2**63) - 1} is beyond 64 bits"),
        (float("nan"), "map key must not be NaN: it equals no key, itself included"),
    ],
)
async def test_a_map_key_the_store_cannot_hold_or_find_again_is_refused_when_put(
    key: Any, problem: str
) -> None:
    """A key beyond 64 bits was taken, and then no checkpoint or passivation could
    encode its lane: the agent stayed in memory for good. A NaN key (``json.loads``
    reads ``NaN``) equals nothing: each put of it added an entry, and no remove could
    find one, on the owner, its replicas or its stored copy."""
    async with open_plane({"/h/:id": Holder}, idle_timeout=5) as plane:
        for _ in range(2):
            await plane.command("/h/1", "entries", {"update": key, "value": 1})
            await plane.settle()
            assert str(plane.failures.last_error) == problem
        await plane.command("/h/1", "entries", {"update": 2**64 - 1, "value": 1})
        await plane.command("/h/1", "entries", {"update": -(2**63), "value": 2})
        await plane.advance(30)
        assert not plane.is_active("/h/1")  # passivated; it loads again whole
        assert plane.get("/h/1", "entries") == {2**64 - 1: 1, -(2**63): 2}
