"""Routing a broker record to an agent: the pure parts.

* :class:`RoutePattern` — the node URIs an agent class answers to (``/vehicle/:id``).
* :class:`RouteTable` — finds the pattern, and what it was registered with, for a URI;
  fixed segments win over params.
* :class:`RouteTemplate` — how a source's record names its agent
  (``/vehicle/{payload.vehicle_id}``); rendering failures are
  :class:`~swimstream.errors.RecordRoutingError`, bound for the dead-letter topic.
* :func:`shard_for` / :func:`shard_for_uri` — the shard of a key or an agent, computed
  with the producers' partitioner (Java's murmur2 or librdkafka's crc32) so that keyed
  events arrive at the instance that owns their agent.
* :func:`is_base_class` — whether a class is the base agents subclass, which no route
  may name.
* :class:`ServerPath` — the paths the web port answers itself, which no static agent
  route may take.

This package does no I/O and imports nothing of swimstream but its exception tree.
"""

from swimstream.routing.pattern import RoutePattern
from swimstream.routing.reserved import ServerPath
from swimstream.routing.segments import quote_segment, unquote_segment
from swimstream.routing.shard import PARTITIONERS, Partitioner, murmur2, shard_for, shard_for_uri
from swimstream.routing.table import RouteMatch, RouteTable
from swimstream.routing.targets import is_base_class
from swimstream.routing.template import Placeholder, RouteTemplate

__all__ = [
    "PARTITIONERS",
    "Partitioner",
    "Placeholder",
    "RouteMatch",
    "RoutePattern",
    "RouteTable",
    "RouteTemplate",
    "ServerPath",
    "is_base_class",
    "murmur2",
    "quote_segment",
    "shard_for",
    "shard_for_uri",
    "unquote_segment",
]
