"""swimstream: stateful digital-twin agents over Kafka and Pulsar streams.

Every source in the event stream gets an agent with typed lanes; agents link to each
other's lanes and every state change streams over those links as CRDT deltas.
"""

from swimstream.agent import (
    Agent,
    CommandLane,
    CounterLane,
    DemandMapLane,
    DemandValueLane,
    JoinMapLane,
    JoinValueLane,
    MapDownlink,
    MapLane,
    ValueDownlink,
    ValueLane,
)
from swimstream.errors import (
    AgentRestoreError,
    BrokerError,
    CallbackError,
    ClosedResourceError,
    CodecError,
    ConfigError,
    DefinitionError,
    InvalidRouteError,
    LaneNotFoundError,
    NodeNotFoundError,
    RecordDecodeError,
    RecordRoutingError,
    RecordTooLargeError,
    RoutingError,
    StoreError,
    StoreLockedError,
    StoreWriteError,
    SwimstreamError,
)
from swimstream.runtime import Plane

__all__ = [
    "Agent",
    "AgentRestoreError",
    "BrokerError",
    "CallbackError",
    "ClosedResourceError",
    "CodecError",
    "CommandLane",
    "ConfigError",
    "CounterLane",
    "DefinitionError",
    "DemandMapLane",
    "DemandValueLane",
    "InvalidRouteError",
    "JoinMapLane",
    "JoinValueLane",
    "LaneNotFoundError",
    "MapDownlink",
    "MapLane",
    "NodeNotFoundError",
    "Plane",
    "RecordDecodeError",
    "RecordRoutingError",
    "RecordTooLargeError",
    "RoutingError",
    "StoreError",
    "StoreLockedError",
    "StoreWriteError",
    "SwimstreamError",
    "ValueDownlink",
    "ValueLane",
]
