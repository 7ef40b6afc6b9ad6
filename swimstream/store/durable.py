"""The plane's agent store when state is durable: the overlay over committed state.

Passivating an agent must not write it to SQLite: that file holds only committed
checkpoints, and the agent may have changed since the last one. So a passivated agent
waits in an in-memory *overlay* until the checkpoint that captures it has been written,
then leaves it; loading looks in the overlay first, then in committed state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from swimstream.runtime.agent_record import StoredAgent
from swimstream.store.committed import CommittedStore
from swimstream.store.entries import assemble


class DurableAgentStore:
    """Implements :class:`~swimstream.runtime.AgentStore` over committed state."""

    def __init__(self, committed: CommittedStore) -> None:
        self.committed = committed
        self._overlay: dict[str, tuple[int, StoredAgent]] = {}
        self.generation = 0
        """The checkpoint a passivation now would be captured by."""
        self._written_through = -1

    def load(self, node_uri: str) -> StoredAgent | None:
        held = self._overlay.get(node_uri)
        if held is not None:
            return held[1]
        rows = self.committed.load(node_uri)
        return None if rows is None else assemble(rows)

    def save(self, node_uri: str, stored: StoredAgent) -> None:
        self._overlay[node_uri] = (self.generation, stored)

    def __len__(self) -> int:
        return self.committed.known_count() + len(self._overlay)  # no scan: metrics ask

    def passivated_value(self, node_uri: str, name: str) -> bytes | None:
        """One value of a passivated agent as it was saved (None: it has none)."""
        held = self._overlay.get(node_uri)
        if held is None:
            rows = self.committed.load(node_uri)
            return None if rows is None else assemble(rows).get(name)
        return held[1].get(name)

    def forget(self, select: Callable[[str], bool]) -> None:
        """Drop the passivated agents ``select`` names (their shard left this instance,
        or is being restored: committed state is theirs again)."""
        for node in [node for node in self._overlay if select(node)]:
            del self._overlay[node]

    def keep(self, nodes: Iterable[str]) -> None:
        """The checkpoint being collected leaves these passivated agents' changes out
        (their shard is held, its partitions revoked): keep them here for the next
        checkpoint, which stores them once the shard is back. Dropped when that one was
        written, their agents would load from committed state and lose those changes.
        Called during the checkpoint's collect, before its :meth:`next_generation`."""
        for node in nodes:
            held = self._overlay.get(node)
            if held is not None:
                self._overlay[node] = (self.generation + 1, held[1])

    def next_generation(self) -> int:
        """A checkpoint collected its changes; later passivations belong to the next."""
        self.generation += 1
        return self.generation - 1

    def written(self, generation: int) -> None:
        """The checkpoint of ``generation`` is in committed state: drop what it covered."""
        done = [node for node, (g, _) in self._overlay.items() if g <= generation]
        for node in done:
            del self._overlay[node]
        self._written_through = max(self._written_through, generation)

    def settle(self) -> None:
        """Nothing changed since the last checkpoint (the checkpointer found nothing to
        cut): once every checkpoint collected is written, committed state holds each
        passivated agent as the overlay does, so the overlay lets them go.

        Without it, agents only read (loaded by an HTTP GET or a link, then passivated
        unchanged) piled up here while no state changed, since only a checkpoint's write
        empties the overlay and an idle instance makes none: memory grew with every
        agent read rather than stay bounded by the agents in use."""
        if self._overlay and self._written_through >= self.generation - 1:
            self._overlay.clear()

    @property
    def overlay_size(self) -> int:
        """Passivated agents waiting for their checkpoint to be written."""
        return len(self._overlay)
