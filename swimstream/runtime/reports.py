"""What the plane hands out: the insights agents publish, and snapshots of its counters.

Their own module so that sinks, the web server and the metrics can name them without
reaching into the plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Insight:
    """A record an agent published for the sinks."""

    topic: str
    key: str
    value: Any
    node_uri: str


@dataclass(frozen=True, slots=True)
class PlaneStatistics:
    """A snapshot of the plane's counters (immutable; call ``statistics()`` again)."""

    active_agents: int
    stored_agents: int
    messages_handled: int
    commands: int
    callback_failures: int
    links: int
    timers: int
    activations: int
    passivations: int
