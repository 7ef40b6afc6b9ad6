"""A message's ack completes only after the work its callback caused, awaits included.

This is what lets a source commit an offset only once a record's effects are done.
"""

import asyncio
from typing import Any

from swimstream import Agent, CommandLane
from swimstream.runtime.origin import Tracked
from swimstream.testing import open_plane

EVENTS: list[str] = []


class Origin(Tracked):
    """Counts the work handed out under it; notes when all of it is done."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending = 1
        self.errors: list[BaseException | None] = []

    def __call__(self, error: BaseException | None) -> None:
        self.errors.append(error)
        self.pending -= 1
        if self.pending == 0:
            EVENTS.append(f"{self.name} done")

    def fork(self) -> Tracked:
        self.pending += 1
        return self


class Relay(Agent):
    go = CommandLane[str]()

    @go.on_command
    def on_go(self, target: str) -> None:
        self.command(target, "take", self.node_uri)


class SlowRelay(Agent):
    go = CommandLane[str]()

    @go.on_command
    async def on_go(self, target: str) -> None:
        await asyncio.sleep(0.01)  # other agents' turns run meanwhile
        self.command(target, "take", self.node_uri)


class Sink(Agent):
    take = CommandLane[Any]()

    @take.on_command
    def on_take(self, sender: str) -> None:
        EVENTS.append(f"took from {sender}")


ROUTES = {"/relay/:id": Relay, "/slow/:id": SlowRelay, "/sink/:id": Sink}


async def test_an_ack_waits_for_the_commands_its_callback_sent_before_and_after_awaits() -> None:
    EVENTS.clear()
    async with open_plane(ROUTES) as plane:
        first, second, third = Origin("first"), Origin("second"), Origin("third")
        plane.submit("/slow/a", "go", "/sink/s", second)
        plane.submit("/relay/a", "go", "/sink/s", first)
        plane.submit("/relay/b", "go", "/sink/t", third)
        plane.submit("/relay/b", "go", "/sink/t")  # untracked: no ack, nothing to count
        await plane.settle()  # (waits for async callbacks too)
    assert EVENTS.index("first done") > EVENTS.index("took from /relay/a")
    assert EVENTS.index("third done") > EVENTS.index("took from /relay/b")
    assert EVENTS.index("second done") > EVENTS.index("took from /slow/a")
    assert EVENTS.count("took from /relay/b") == 2
    assert [e for e in EVENTS if e.endswith("done")] == ["first done", "third done", "second done"]
    for origin in (first, second, third):  # the callback and the command each acked, cleanly
        assert origin.errors == [None, None], (origin.name, origin.errors)
