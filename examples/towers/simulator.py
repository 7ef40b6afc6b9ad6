"""A simulated fleet of sensors on cell towers, producing readings to a topic.

Each device has a home tower and a temperature that drifts in a random walk; now and
then a device moves to a neighbouring tower, and a few run hot (above 90, raising
alerts) before cooling down. Records are keyed by device id and carry JSON
``{"device", "tower", "temp", "ts"}``: the shape the towers app's source expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import orjson

Produce = Callable[[str, bytes, bytes], None]
"""produce(topic, key, value)."""


class Fleet:
    """The devices and their towers; ``reading()`` advances one device by one step."""

    def __init__(self, devices: int, towers: int | None = None, seed: int = 1) -> None:
        self._rng = random.Random(seed)
        self.towers = towers or max(4, devices // 250)
        self._tower = [self._rng.randrange(self.towers) for _ in range(devices)]
        self._temp = [self._rng.uniform(45.0, 75.0) for _ in range(devices)]
        self._ts = 0

    def reading(self) -> tuple[str, dict[str, Any]]:
        """The next reading: ``(device id, payload)``."""
        rng = self._rng
        device = rng.randrange(len(self._tower))
        if rng.random() < 0.002:  # moves to a neighbouring tower
            self._tower[device] = (self._tower[device] + rng.choice((-1, 1))) % self.towers
        temp = self._temp[device] + rng.gauss(0.0, 1.5)
        if rng.random() < 0.0005:
            temp += 25.0  # a heat spike
        temp = min(110.0, max(20.0, temp * 0.995 + 60.0 * 0.005))  # drifts back toward 60
        self._temp[device] = temp
        self._ts += 1
        payload = {
            "device": str(device),
            "tower": f"t{self._tower[device]}",
            "temp": round(temp, 1),
            "ts": self._ts,
        }
        return str(device), payload


async def simulate(
    produce: Produce, topic: str, fleet: Fleet, rate: int, stop: asyncio.Event
) -> int:
    """Produce ``rate`` readings per second until ``stop`` is set; returns how many."""
    sent = 0
    tick = 0.02
    started = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate)
        for _ in range(min(due - sent, rate)):  # catch up, but never more than a second's worth
            key, payload = fleet.reading()
            produce(topic, key.encode(), orjson.dumps(payload))
            sent += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
    return sent
