"""What changed since the last checkpoint: the durable store's view of the plane.

The plane tells the tracker of every change (it is the plane's
:class:`~swimstream.runtime.store.StateObserver`). On the hot path that is one dict store
per lane change: the lane object itself is the key, so nothing is encoded or copied
until the checkpoint, and a lane changed a thousand times between two checkpoints is
written once (analyze, then store). Links and timers are noted by node URI.

At a checkpoint, :meth:`StateTracker.collect` turns the notes into changelog entries:
a live lane's current snapshot, an agent's links and timers as the plane holds them,
and, for an agent passivated since (its lane objects gone), its values as the store
kept them at passivation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from swimstream.crdt import Op, encode
from swimstream.runtime.agent_record import LINKS, TIMERS

if TYPE_CHECKING:
    from swimstream.agent import Agent, Lane
    from swimstream.runtime import Plane
    from swimstream.store.changelog import ChangelogEntry
    from swimstream.store.durable import DurableAgentStore


class StateTracker:
    """Notes what changed; hands the changes over at each checkpoint."""

    __slots__ = ("_dirty", "_plane", "_shard_of", "_store")

    def __init__(self, store: DurableAgentStore, shard_of: Callable[[str], int]) -> None:
        self._dirty: dict[Any, None] = {}  # Lane objects, or (node uri, name)
        self._store = store
        self._shard_of = shard_of
        self._plane: Plane | None = None

    def attach(self, plane: Plane) -> None:
        """Follow ``plane``'s changes from now on."""
        self._plane = plane
        plane.track_state(self)

    def __len__(self) -> int:
        return len(self._dirty)

    # -- StateObserver -------------------------------------------------------------------

    def lane_changed(self, lane: Lane, op: Op) -> None:
        self._dirty[lane] = None

    def links_changed(self, node_uri: str) -> None:
        self._dirty[(node_uri, LINKS)] = None

    def timers_changed(self, node_uri: str) -> None:
        self._dirty[(node_uri, TIMERS)] = None

    def passivating(self, agent: Agent) -> None:
        """The agent's lanes are about to go: note them by name instead."""
        dirty = self._dirty
        node = agent.node_uri
        for lane in agent.bound_lanes():
            if lane in dirty:
                del dirty[lane]
                dirty[(node, lane.name)] = None

    # -- checkpoints ---------------------------------------------------------------------

    def collect(self) -> list[ChangelogEntry]:
        """Everything that changed since the last collect, as changelog entries."""
        from swimstream.agent import Lane
        from swimstream.store.changelog import ChangelogEntry

        assert self._plane is not None
        plane = self._plane
        dirty, self._dirty = self._dirty, {}
        entries = []
        shard_of = self._shard_of
        for key in dirty:
            if isinstance(key, Lane):
                node, name = key._agent.node_uri, key.name
                snapshot = key.snapshot()
                value = None if snapshot is None else encode(snapshot)
            else:
                node, name = key
                if name == TIMERS:
                    value = plane.timers_of(node)
                elif name == LINKS and plane.is_active(node):
                    value = plane.links_of(node)
                else:
                    value = self._store.passivated_value(node, name)
            entries.append(ChangelogEntry(node, name, value, shard_of(node)))
        return entries
