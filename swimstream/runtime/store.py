"""Where passivated agents wait: the store interface, and the in-memory store.

An agent is stored as one opaque record (:mod:`swimstream.runtime.agent_record`), keyed
by node URI. The runtime needs only load and save; the durable SQLite store plugs in
behind the same protocol. The in-memory store keeps encoded bytes rather than objects,
so a passivated agent costs its encoded size, and what survives passivation is exactly
what would survive a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class AgentStore(Protocol):
    """Keeps the records of agents that are not in memory."""

    def load(self, node_uri: str) -> bytes | None:
        """The stored record of ``node_uri``, or None if it was never stored."""
        ...

    def save(self, node_uri: str, record: bytes) -> None:
        """Store (replace) the record of ``node_uri``."""
        ...

    def __len__(self) -> int:
        """How many agents are stored."""
        ...


class MemoryAgentStore:
    """Agent records in a dict: for tests, notebooks and stateless deployments."""

    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}

    def load(self, node_uri: str) -> bytes | None:
        return self._records.get(node_uri)

    def save(self, node_uri: str, record: bytes) -> None:
        self._records[node_uri] = record

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)
