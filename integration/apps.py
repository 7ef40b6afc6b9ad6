"""Small agent apps the integration tests run (imported by instances as integration.apps)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any

from swimstream import Agent, CommandLane, CounterLane, JoinValueLane, MapLane, ValueLane


class Ledger(Agent):
    """Publishes one insight per record it handles, so every record's effect is visible."""

    entry = CommandLane[dict[str, Any]]()
    count = CounterLane()
    last = ValueLane[int](default=-1)

    @entry.on_command
    def on_entry(self, record: dict[str, Any]) -> None:
        self.count.add(1)
        self.last.set(record["seq"])
        self.publish("processed", {"seq": record["seq"], "account": self.params["id"]})


class Lingering(Ledger):
    """A Ledger whose ``on_stop`` takes two seconds: a drain long enough to signal into."""

    def on_stop(self) -> None:
        time.sleep(2.0)


class Paced(Agent):
    """Publishes one insight per record, 2 ms after it came: a few agents keep records
    (and their insights) in flight for seconds, long enough to freeze the broker under
    them."""

    entry = CommandLane[dict[str, Any]]()

    @entry.on_command
    async def on_entry(self, record: dict[str, Any]) -> None:
        await asyncio.sleep(0.002)
        self.publish("processed", {"seq": record["seq"], "account": self.params["id"]})


class Burst(Agent):
    """Publishes as many insights as a command asks for, all from one callback: more
    than a Pulsar producer's queue takes at once."""

    burst = CommandLane[int]()

    @burst.on_command
    def on_burst(self, count: int) -> None:
        for seq in range(count):
            self.publish("processed", {"seq": seq, "account": self.params["id"]})


class Slow(Agent):
    """Takes its time over every record: the source must pause rather than pile up."""

    work = CommandLane[dict[str, Any]]()
    done = CounterLane()

    @work.on_command
    async def on_work(self, record: dict[str, Any]) -> None:
        await asyncio.sleep(0.002)
        self.done.add(1)


async def wait_for_file(path: str) -> None:
    """Return once ``path`` exists, looking every 20 ms (a test creates it)."""
    for _ in itertools.count():
        if file_exists(path):
            return
        await asyncio.sleep(0.02)


def file_exists(path: str) -> bool:
    return os.path.exists(path)


class Gated(Agent):
    """A Ledger whose records may name a gate file: such a record waits until the file
    exists, so a test sets a slow key's pace by what it sees, not by time."""

    entry = CommandLane[dict[str, Any]]()
    count = CounterLane()
    last = ValueLane[int](default=-1)
    reordered = CounterLane()

    @entry.on_command
    async def on_entry(self, record: dict[str, Any]) -> None:
        gate = record.get("gate")
        if gate is not None:
            await wait_for_file(gate)
        if record["seq"] <= self.last.get():
            self.reordered.add(1)
        self.count.add(1)
        self.last.set(record["seq"])
        self.publish("processed", {"seq": record["seq"], "account": self.params["id"]})


class Gauge(Agent):
    """A value other agents link to."""

    level = ValueLane[int](default=0)


class Reminder(Agent):
    """Holds a timer and a link: both must outlive a restart."""

    remind = CommandLane[dict[str, Any]]()
    watch = CommandLane[str]()
    fired = CounterLane()
    watched = ValueLane[Any](default=None)

    @remind.on_command
    def on_remind(self, spec: dict[str, Any]) -> None:
        self.schedule(spec["delay"], self.ring)

    def ring(self) -> None:
        self.fired.add(1)

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "level", on_set=self.level_changed)

    def level_changed(self, new: Any, old: Any) -> None:
        self.watched.set(new)


class Alarm(Agent):
    """Rings once, a while after it is armed: a stored timer that must fire on one
    instance of a group, the one its shard is assigned to."""

    arm = CommandLane[dict[str, Any]]()
    rang = CounterLane()

    @arm.on_command
    def on_arm(self, spec: dict[str, Any]) -> None:
        self.schedule(spec["delay"], self.ring)

    def ring(self) -> None:
        self.rang.add(1)
        self.publish("rang", {"alarm": self.params["id"]})


class Meter(Agent):
    """A level and the readings it kept: ``{"n": 2, "drop": "1"}`` sets the level to 2,
    keeps reading "2" and drops reading "1"."""

    level = ValueLane[Any](default=None)
    seen = MapLane[str, int]()
    read = CommandLane[dict[str, Any]]()

    @read.on_command
    def on_read(self, reading: dict[str, Any]) -> None:
        self.level.set(reading["n"])
        self.seen[str(reading["n"])] = reading["n"]
        if "drop" in reading:
            self.seen.remove(reading["drop"])


class MeterWatcher(Agent):
    """Mirrors a meter through a value downlink, a map downlink and a join lane."""

    level = ValueLane[Any](default=None)
    seen = MapLane[str, int]()
    joined = JoinValueLane[str, Any]()
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "level", on_set=self.on_level)
        self.map_downlink(node, "seen", on_update=self.on_update, on_remove=self.on_remove)
        self.joined.join("meter", node=node, lane="level")

    def on_level(self, new: Any, old: Any) -> None:
        self.level.set(new)

    def on_update(self, key: str, new: int, old: int | None) -> None:
        self.seen[key] = new

    def on_remove(self, key: str, old: int) -> None:
        self.seen.remove(key)


class Echo(Agent):
    """Keeps whatever a record brings: the value, a map entry under its ``key`` field (the
    record whole) and a count of its ``add`` field; publishes it too."""

    record = CommandLane[Any]()
    last = ValueLane[Any](default=None)
    seen = MapLane[Any, Any]()
    total = CounterLane()

    @record.on_command
    def on_record(self, value: Any) -> None:
        self.last.set(value)
        if isinstance(value, dict):
            if "key" in value:
                self.seen[value["key"]] = value
            if "add" in value:
                self.total.add(value["add"])
        self.publish("echo", value)
