"""Where passivated agents wait: the store interface, and the in-memory store.

An agent is stored as a mapping of names to encoded values
(:mod:`swimstream.runtime.agent_record`), keyed by node URI. The runtime needs only load
and save; the durable store (SQLite behind the changelog) plugs in behind the same
protocol. The in-memory store keeps encoded bytes rather than objects, so a passivated
agent costs its encoded size, and what survives passivation is exactly what would
survive a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from swimstream.agent import ChangeNotes
from swimstream.runtime.agent_record import StoredAgent

if TYPE_CHECKING:
    from swimstream.agent import Agent


class AgentStore(Protocol):
    """Keeps the records of agents that are not in memory."""

    def load(self, node_uri: str) -> StoredAgent | None:
        """The stored agent at ``node_uri``, or None if it was never stored."""
        ...

    def save(self, node_uri: str, stored: StoredAgent) -> None:
        """Store (replace) the agent at ``node_uri``."""
        ...

    def __len__(self) -> int:
        """How many agents are stored."""
        ...


class StateObserver(ChangeNotes, Protocol):
    """Follows every change of agent state, so it can be persisted (the durable store).

    Stateful lanes keep its notes (:class:`~swimstream.agent.context.ChangeNotes`)
    inside the agent's turn, so ``lane_changed`` must only take note; the others are
    told when an agent's links or timers changed and just before an agent is passivated
    (its lane objects are about to go).
    """

    def links_changed(self, node_uri: str) -> None: ...

    def timers_changed(self, node_uri: str) -> None: ...

    def passivating(self, agent: Agent) -> None: ...


class MemoryAgentStore:
    """Agent records in a dict: for tests, notebooks and stateless deployments."""

    def __init__(self) -> None:
        self._records: dict[str, StoredAgent] = {}

    def load(self, node_uri: str) -> StoredAgent | None:
        return self._records.get(node_uri)

    def save(self, node_uri: str, stored: StoredAgent) -> None:
        self._records[node_uri] = stored

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)
