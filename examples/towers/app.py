"""The agents of the towers example (see the package docstring)."""

from __future__ import annotations

import heapq
from typing import Any

from swimstream import Agent, CommandLane, CounterLane, JoinValueLane, MapLane, ValueLane

HOT_TEMPERATURE = 90.0
"""Readings above this raise an alert and count as hot."""


class Device(Agent):
    """Twin of one sensor; route ``/device/:id``. Fed by the ``readings`` topic."""

    status = ValueLane[dict[str, Any] | None](default=None)
    history = MapLane[int, float](max_entries=50)  # the newest 50 readings by timestamp
    readings = CounterLane()
    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        temp = float(event["temp"])
        tower = str(event["tower"])
        self.history[int(event["ts"])] = temp
        self.readings.add(1)
        previous = self.status.get()
        self.status.set({"temp": temp, "tower": tower, "ts": int(event["ts"])})
        if previous is None or previous["tower"] != tower:
            self.command(f"/tower/{tower}", "attach", self.node_uri)
        if temp > HOT_TEMPERATURE:
            self.publish("alerts", {"device": self.params["id"], "temp": temp, "tower": tower})


class Tower(Agent):
    """Aggregate over the devices attached to one tower; route ``/tower/:id``.

    The summary is kept up to date incrementally from each change (old and new status),
    so a tower with thousands of devices does little work per reading, whatever order
    the readings come in: the hottest device is the top of a heap of the temperatures
    seen, whose stale entries (a device that cooled down or left) are dropped when they
    reach the top. The heap is derived from the join, so it is not stored: a tower
    loaded after a restart builds it from its restored devices on first use. The
    summary is set only when it changes (a count, or the hottest temperature): most
    readings change neither, and every set is a record for the summary's sinks and a
    delta for the world's join, as Kafka Streams' emit-on-change spares a KTable's
    downstream idempotent updates.
    """

    devices = JoinValueLane[str, dict[str, Any] | None]()
    summary = ValueLane[dict[str, Any]](default={"devices": 0, "hot": 0, "max_temp": None})
    attach = CommandLane[str]()

    _hottest: list[tuple[float, str]] | None = None
    """(-temp, device) of every status seen since built; stale ones included."""

    def on_start(self) -> None:
        self.command("/world", "register", self.node_uri)

    @attach.on_command
    def on_attach(self, device_uri: str) -> None:
        self.devices.join(device_uri, node=device_uri, lane="status")

    @devices.on_update
    def on_device(self, key: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        if new is not None and new["tower"] != self.params["id"]:
            self._changed(old, None)  # the device moved on: it counts here no more
            self.devices.remove(key)  # and leaves the join
            return
        self._changed(old, new, key)

    @devices.on_remove
    def on_device_gone(self, key: str, old: dict[str, Any] | None) -> None:
        if old is None or old["tower"] == self.params["id"]:
            self._changed(old, None)  # (a device that moved on was accounted for then)

    def _changed(
        self, old: dict[str, Any] | None, new: dict[str, Any] | None, key: str | None = None
    ) -> None:
        current = self.summary.get()
        devices = current["devices"] + (new is not None) - (old is not None)
        hot = current["hot"] + _hot(new) - _hot(old)
        hottest = self._hottest
        if hottest is None:
            hottest = self._hottest = self._build_heap()  # includes ``new`` (already joined)
        elif new is not None and key is not None:
            heapq.heappush(hottest, (-new["temp"], key))
            if len(hottest) > 2 * len(self.devices) + 64:  # mostly stale: start afresh
                hottest = self._hottest = self._build_heap()
        while hottest and not self._current(hottest[0]):
            heapq.heappop(hottest)
        max_temp = -hottest[0][0] if hottest else None
        # Most readings move no count and not the hottest device: nothing to set.
        if (
            devices != current["devices"]
            or hot != current["hot"]
            or max_temp != current["max_temp"]
        ):
            self.summary.set({"devices": devices, "hot": hot, "max_temp": max_temp})

    def _current(self, entry: tuple[float, str]) -> bool:
        """Whether a heap entry still is its device's temperature on this tower."""
        status = self.devices.get(entry[1])
        return (
            status is not None
            and status["tower"] == self.params["id"]
            and -entry[0] == status["temp"]
        )

    def _build_heap(self) -> list[tuple[float, str]]:
        mine = self.params["id"]
        heap = [
            (-status["temp"], key)
            for key, status in self.devices.items()
            if status is not None and status["tower"] == mine
        ]
        heapq.heapify(heap)
        return heap


def _hot(status: dict[str, Any] | None) -> int:
    return 1 if status is not None and status["temp"] > HOT_TEMPERATURE else 0


class World(Agent):
    """The global view over every tower's summary; route ``/world``.

    Totals change by the difference between a tower's old and new summary.
    """

    towers = JoinValueLane[str, dict[str, Any]]()
    totals = ValueLane[dict[str, int]](default={"towers": 0, "devices": 0, "hot": 0})
    register = CommandLane[str]()

    @register.on_command
    def on_register(self, tower_uri: str) -> None:
        self.towers.join(tower_uri, node=tower_uri, lane="summary")

    @towers.on_update
    def on_tower(self, key: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        totals = dict(self.totals.get())
        totals["towers"] += (new is not None) - (old is not None)
        for field in ("devices", "hot"):
            totals[field] += (new or {}).get(field, 0) - (old or {}).get(field, 0)
        self.totals.set(totals)
