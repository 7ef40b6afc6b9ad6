"""swimstream: stateful digital-twin agents over Kafka and Pulsar streams.

Every source in the event stream gets an agent with typed lanes; agents link to each
other's lanes and every state change streams over those links as CRDT deltas.
"""

from swimstream.errors import (
    ClosedResourceError,
    CodecError,
    ConfigError,
    DefinitionError,
    InvalidRouteError,
    LaneNotFoundError,
    NodeNotFoundError,
    RecordRoutingError,
    RoutingError,
    SwimstreamError,
)

__all__ = [
    "ClosedResourceError",
    "CodecError",
    "ConfigError",
    "DefinitionError",
    "InvalidRouteError",
    "LaneNotFoundError",
    "NodeNotFoundError",
    "RecordRoutingError",
    "RoutingError",
    "SwimstreamError",
]
