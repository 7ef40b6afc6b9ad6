"""The towers app's logic written by hand: the floor under any framework's cost.

The pipeline bench (and the instructions bench) run this next to the towers app on the
same readings, so the gap between the two is what the framework costs: routing, the
record's ack and offsets, the mailbox and the turn, lanes as CRDTs with timestamps,
links, the join, sinks. Here every reading is decoded, its device's state updated
(the newest 50 readings, a count, the status), its tower's aggregate kept
incrementally as the app keeps it (a count, the hot devices, the hottest one from a
heap with stale entries), the world's totals moved by the summary's difference, an alert
made for a hot reading and a summary record for each change of a summary: the app's
observable results (``tests/examples/test_towers_by_hand.py`` checks them against
the app's), with dicts and direct calls, in one loop.
"""

from __future__ import annotations

import heapq
from typing import Any

import orjson

HISTORY = 50
HOT_TEMPERATURE = 90.0


class _Device:
    __slots__ = ("history", "readings", "status")

    def __init__(self) -> None:
        self.history: dict[int, float] = {}
        self.readings = 0
        self.status: dict[str, Any] | None = None


class _Tower:
    __slots__ = ("devices", "heap", "id", "summary")

    def __init__(self, tower_id: str) -> None:
        self.id = tower_id
        self.devices: dict[str, dict[str, Any]] = {}
        self.summary: dict[str, Any] = {"devices": 0, "hot": 0, "max_temp": None}
        self.heap: list[tuple[float, str]] = []


class TowersByHand:
    """Devices, towers and the world of the towers app, as plain objects."""

    def __init__(self) -> None:
        self.devices: dict[str, _Device] = {}
        self.towers: dict[str, _Tower] = {}
        self.totals = {"towers": 0, "devices": 0, "hot": 0}
        self.alerts: list[dict[str, Any]] = []
        self.summaries: list[tuple[str, dict[str, Any]]] = []

    def handle(self, key: bytes, value: bytes) -> None:
        """One reading, keyed by its device id."""
        event = orjson.loads(value)
        device_id = key.decode()
        temp = float(event["temp"])
        tower_id = str(event["tower"])
        ts = int(event["ts"])
        device = self.devices.get(device_id)
        if device is None:
            device = self.devices[device_id] = _Device()
        history = device.history
        history.pop(ts, None)  # a rewrite moves to the newest place, as a map lane's does
        history[ts] = temp
        if len(history) > HISTORY:
            del history[next(iter(history))]
        device.readings += 1
        previous = device.status
        status = device.status = {"temp": temp, "tower": tower_id, "ts": ts}
        if previous is not None and previous["tower"] != tower_id:
            self._left(previous["tower"], device_id)
        self._update(tower_id, device_id, status)
        if temp > HOT_TEMPERATURE:
            self.alerts.append({"device": device_id, "temp": temp, "tower": tower_id})

    def _left(self, tower_id: str, device_id: str) -> None:
        tower = self.towers[tower_id]
        old = tower.devices.pop(device_id)
        self._summarize(tower, old, None)

    def _update(self, tower_id: str, device_id: str, status: dict[str, Any]) -> None:
        tower = self.towers.get(tower_id)
        if tower is None:
            tower = self.towers[tower_id] = _Tower(tower_id)
            self._world(None, tower.summary)
        old = tower.devices.get(device_id)
        tower.devices[device_id] = status
        heapq.heappush(tower.heap, (-status["temp"], device_id))
        if len(tower.heap) > 2 * len(tower.devices) + 64:
            tower.heap = [(-s["temp"], d) for d, s in tower.devices.items()]
            heapq.heapify(tower.heap)
        self._summarize(tower, old, status)

    def _summarize(
        self, tower: _Tower, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        current = tower.summary
        devices = current["devices"] + (new is not None) - (old is not None)
        hot = current["hot"] + _hot(new) - _hot(old)
        heap = tower.heap
        while heap:
            entry = tower.devices.get(heap[0][1])
            if entry is not None and entry["temp"] == -heap[0][0]:
                break
            heapq.heappop(heap)
        max_temp = -heap[0][0] if heap else None
        if (devices, hot, max_temp) != (current["devices"], current["hot"], current["max_temp"]):
            tower.summary = {"devices": devices, "hot": hot, "max_temp": max_temp}
            self.summaries.append((tower.id, tower.summary))
            self._world(current, tower.summary)

    def _world(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        totals = self.totals
        totals["towers"] += old is None
        for field in ("devices", "hot"):
            totals[field] += new[field] - (old or {}).get(field, 0)


def _hot(status: dict[str, Any] | None) -> int:
    return 1 if status is not None and status["temp"] > HOT_TEMPERATURE else 0
