"""The demo's simulator shares the app's event loop: any ``--rate`` leaves it turns."""

from __future__ import annotations

import asyncio

from examples.towers.simulator import CHUNK, Fleet, simulate


async def test_a_rate_beyond_the_machine_still_lets_the_loop_turn() -> None:
    """``demo --rate 3000000`` produced a second's worth of readings at each tick in one
    go: seconds in which the app read nothing, no status line came and Ctrl-C waited."""
    stop = asyncio.Event()
    produced = 0
    most_between_turns = 0

    def produce(topic: str, key: bytes, value: bytes) -> None:
        nonlocal produced
        produced += 1

    async def watch() -> None:
        nonlocal most_between_turns
        seen = 0
        while produced < 40_000:
            await asyncio.sleep(0)
            most_between_turns = max(most_between_turns, produced - seen)
            seen = produced
        stop.set()

    watcher = asyncio.create_task(watch())
    await simulate(produce, "readings", Fleet(100), 10_000_000, stop)
    await watcher
    assert most_between_turns <= CHUNK, most_between_turns
