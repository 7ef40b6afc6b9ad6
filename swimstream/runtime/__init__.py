"""The runtime that runs agents: scheduling, links, timers, passivation.

It imports the agent layer and implements its context protocol; the service, the
store, the mesh and the web plug into it through the plane's small surface (``submit``,
``link``, ``observe``, the ``AgentStore`` protocol).
"""

from swimstream.runtime.clock import Clock, FakeClock, SystemClock
from swimstream.runtime.gc_policy import tune_gc
from swimstream.runtime.plane import Plane
from swimstream.runtime.reports import Insight, PlaneStatistics
from swimstream.runtime.store import AgentStore, MemoryAgentStore

__all__ = [
    "AgentStore",
    "Clock",
    "FakeClock",
    "Insight",
    "MemoryAgentStore",
    "Plane",
    "PlaneStatistics",
    "SystemClock",
    "tune_gc",
]
