"""An agent whose stored links no longer all fit loads all the same, whole or not at all.

Its links are restored as it loads: a link to a lane the code no longer has, or to an
agent that cannot load, must not leave it half-loaded in memory (its next use found it
so, and its next passivation dropped the rest of its links for good).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from swimstream import Agent, AgentRestoreError, CommandLane, MapLane, ValueLane
from swimstream.runtime import MemoryAgentStore
from swimstream.runtime.agent_record import LINKS
from swimstream.testing import open_plane


class Settable(Agent):
    """Sets ``[lane, value]`` on a value lane of its subclass."""

    put = CommandLane[list[Any]]()

    @put.on_command
    def on_put(self, spec: list[Any]) -> None:
        self.lane(spec[0]).set(spec[1])  # type: ignore[attr-defined]


class Target(Settable):
    status = ValueLane[Any](default=None)
    other = ValueLane[Any](default=None)


class Renamed(Settable):
    """New code: ``status`` is gone."""

    other = ValueLane[Any](default=None)


class ChangedKind(Agent):
    """New code: ``other`` became a map lane, so stored state cannot load."""

    status = ValueLane[Any](default=None)
    other = MapLane[str, Any]()


class Follower(Agent):
    """Follows both lanes of ``/t/1``; counts its commands."""

    seen = ValueLane[dict[str, Any]](default={})
    commands = ValueLane[int](default=0)
    go = CommandLane[str]()

    @go.on_command
    def on_go(self, what: str) -> None:
        if what == "link":
            self.downlink("/t/1", "status", on_set=self.on_status)
            self.downlink("/t/1", "other", on_set=self.on_other)
        self.commands.set(self.commands.get() + 1)

    def on_status(self, new: Any, old: Any) -> None:
        self.seen.set({**self.seen.get(), "status": new})

    def on_other(self, new: Any, old: Any) -> None:
        self.seen.set({**self.seen.get(), "other": new})


async def stored_follower() -> MemoryAgentStore:
    """A store holding ``/s/1`` linked to both lanes of ``/t/1``, and ``/t/1``."""
    store = MemoryAgentStore()
    async with open_plane({"/t/:id": Target, "/s/:id": Follower}, store=store) as plane:
        await plane.command("/s/1", "go", "link")
        await plane.command("/t/1", "put", ["status", "up"])
        await plane.command("/t/1", "put", ["other", 1])
        await plane.settle()
        assert plane.get("/s/1", "seen") == {"status": "up", "other": 1}
    return store


async def test_a_stored_link_to_a_lane_that_is_gone_is_dropped_and_the_rest_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await stored_follower()
    async with open_plane({"/t/:id": Renamed, "/s/:id": Follower}, store=store) as plane:
        await plane.command("/s/1", "go", "more")
        await plane.settle()
        assert plane.get("/s/1", "commands") == 2  # its state came back
        await plane.command("/t/1", "put", ["other", 2])
        await plane.settle()
        assert plane.get("/s/1", "seen") == {"status": "up", "other": 2}  # its other link
        assert plane.passivate("/s/1")
    assert len(store.load("/s/1")[LINKS] or b"") > 0  # type: ignore[index]
    dropped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("/s/1: its stored link is dropped" in m and "'status'" in m for m in dropped)


async def test_an_agent_linked_to_one_that_cannot_load_loads_and_its_link_waits() -> None:
    store = await stored_follower()
    async with open_plane({"/t/:id": ChangedKind, "/s/:id": Follower}, store=store) as plane:
        await plane.command("/s/1", "go", "more")
        await plane.settle()
        assert plane.get("/s/1", "commands") == 2
        with pytest.raises(AgentRestoreError, match="lane 'other'"):
            plane.get("/t/1", "status")
        assert plane.passivate("/s/1")
    # The code is fixed: the waiting links are there still, and follow their target.
    async with open_plane({"/t/:id": Target, "/s/:id": Follower}, store=store) as plane:
        await plane.command("/s/1", "go", "more")
        await plane.command("/t/1", "put", ["status", "down"])
        await plane.settle()
        assert plane.get("/s/1", "seen") == {"status": "down", "other": 1}


class FlakyStore(MemoryAgentStore):
    """Fails the next ``failures`` loads, as a disk or a database can."""

    failures = 0

    def load(self, node_uri: str) -> Any:
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        return super().load(node_uri)


async def test_an_agent_whose_load_fails_is_not_left_half_loaded() -> None:
    store = FlakyStore()
    async with open_plane({"/t/:id": Target, "/s/:id": Follower}, store=store) as plane:
        await plane.command("/s/1", "go", "link")
        await plane.settle()
        assert plane.passivate("/s/1")
        store.failures = 1
        with pytest.raises(AgentRestoreError, match="cannot be loaded: OSError"):
            plane.submit("/s/1", "go", "more")
        assert not plane.is_active("/s/1")
        await plane.command("/s/1", "go", "more")  # the next try loads it whole
        await plane.command("/t/1", "put", ["other", 3])
        await plane.settle()
        assert plane.get("/s/1", "commands") == 2
        assert plane.get("/s/1", "seen") == {"other": 3}


class Levels(Agent):
    level = MapLane[str, int]()
    put = CommandLane[list[Any]]()

    @put.on_command
    def on_put(self, spec: list[Any]) -> None:
        self.level[spec[0]] = spec[1]


class Watcher(Agent):
    """Keeps what its link to ``/t/1``'s map has delivered."""

    seen = MapLane[str, int]()
    go = CommandLane[str]()

    @go.on_command
    def on_go(self, what: str) -> None:
        if what == "link":
            self.map_downlink("/t/1", "level", on_update=self.on_level)

    def on_level(self, key: str, new: int, old: int | None) -> None:
        self.seen[key] = new


async def test_a_change_held_while_its_subscriber_cannot_load_goes_with_the_next() -> None:
    """A change for a subscriber whose load fails stays with its link, and the next
    change the link carries, delivered at once to the subscriber loaded by then, takes
    it along: a map link's change of another key does not replace it."""
    store = FlakyStore()
    async with open_plane({"/t/:id": Levels, "/s/:id": Watcher}, store=store) as plane:
        await plane.command("/s/1", "go", "link")
        await plane.command("/t/1", "put", ["a", 1])
        await plane.settle()
        assert plane.passivate("/s/1")
        store.failures = 1
        await plane.command("/t/1", "put", ["b", 2])  # its delivery cannot load /s/1
        await plane.settle()
        assert not plane.is_active("/s/1")
        await plane.command("/s/1", "go", "more")  # loads it
        await plane.settle()
        await plane.command("/t/1", "put", ["c", 3])
        await plane.settle()
        assert plane.get("/s/1", "seen") == {"a": 1, "b": 2, "c": 3}
