"""swimstream doing only what the peers do: the ``swimstream-devices`` row of the benchmark.

The towers example also joins every device into its tower and republishes the tower's
summary on each reading; the peers do neither. This Device keeps the same per-key state
as they do (count and last reading) and publishes an alert for each hot reading, so the
row compares the frameworks on equal work. Route ``/device/:id``, lane ``reading``.
"""

from __future__ import annotations

from typing import Any

from swimstream import Agent, CommandLane, ValueLane

HOT_TEMPERATURE = 90.0


class Device(Agent):
    """Count and last reading of one device; an alert for each reading above 90."""

    count = ValueLane[int](default=0)
    last = ValueLane[dict[str, Any] | None](default=None)
    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        self.count.set(self.count.get() + 1)
        self.last.set(event)
        if event["temp"] > HOT_TEMPERATURE:
            self.publish("alerts", {"device": self.params["id"], "temp": event["temp"]})
