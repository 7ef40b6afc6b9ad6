"""The API users write agents with: the Agent base class, lanes and downlinks.

This layer holds state and callbacks and knows nothing of how agents are scheduled,
placed or stored; it reaches the runtime only through
:class:`~swimstream.agent.context.AgentContext`.
"""

from swimstream.agent.agent import Agent
from swimstream.agent.changes import change_to_json
from swimstream.agent.command_lane import CommandLane
from swimstream.agent.context import AgentContext, ChangeNotes, LaneObserver, Timer, Uplink
from swimstream.agent.counter_lane import CounterLane
from swimstream.agent.demand_lanes import DemandMapLane, DemandValueLane
from swimstream.agent.downlink import Downlink, MapDownlink, ValueDownlink
from swimstream.agent.join_lanes import JoinMapLane, JoinValueLane
from swimstream.agent.lane import Lane
from swimstream.agent.map_lane import MapLane, apply_map_command
from swimstream.agent.value_lane import ValueLane

__all__ = [
    "Agent",
    "AgentContext",
    "ChangeNotes",
    "CommandLane",
    "CounterLane",
    "DemandMapLane",
    "DemandValueLane",
    "Downlink",
    "JoinMapLane",
    "JoinValueLane",
    "Lane",
    "LaneObserver",
    "MapDownlink",
    "MapLane",
    "Timer",
    "Uplink",
    "ValueDownlink",
    "ValueLane",
    "apply_map_command",
    "change_to_json",
]
