"""Small agent apps the integration tests run (imported by instances as integration.apps)."""

from __future__ import annotations

import asyncio
from typing import Any

from swimstream import Agent, CommandLane, CounterLane, ValueLane


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


class Slow(Agent):
    """Takes its time over every record: the source must pause rather than pile up."""

    work = CommandLane[dict[str, Any]]()
    done = CounterLane()

    @work.on_command
    async def on_work(self, record: dict[str, Any]) -> None:
        await asyncio.sleep(0.002)
        self.done.add(1)
