"""Stand-in agent classes: test data carrying ``__swim_lanes__`` as agent classes do.

``resolve_agents`` recognises agent classes by that attribute alone, so these let its
checks be tested without the agent layer.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class LaneSpec:
    kind: str


class Vehicle:
    __swim_lanes__ = {
        "position": LaneSpec("command"),
        "status": LaneSpec("value"),
        "alerts": LaneSpec("map"),
        "forecast": LaneSpec("demand_value"),
    }


class Tower:
    __swim_lanes__ = {"attach": LaneSpec("command"), "vehicles": LaneSpec("join_value")}


class NotAnAgent:
    pass


class AgentBase:
    """As ``swimstream.Agent`` itself: lanes (none), and the mark of a base to subclass."""

    __swim_lanes__: dict[str, LaneSpec] = {}
    __swim_base__ = True


class AgentSubclass(AgentBase):
    """A subclass of the base: an agent class (the mark is not inherited)."""

    __swim_lanes__ = {"go": LaneSpec("command")}


not_a_class = 42


class Outer:
    class Inner:
        __swim_lanes__ = {"go": LaneSpec("command")}


class Alerting:
    """Publishes to names given as literals (checked) and computed (not seen)."""

    __swim_lanes__ = {"reading": LaneSpec("command")}

    def publish(self, topic: str, value: object) -> None: ...

    def on_reading(self, temp: float, where: str) -> None:
        if temp > 50:
            self.publish("alerts", temp)
        self.publish(topic="summaries", value=temp)
        self.publish(where, temp)  # computed: left to the callback's own error


class AlertingToo(Alerting):
    """Inherits its publishing."""
