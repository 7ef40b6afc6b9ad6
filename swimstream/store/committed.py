"""Where committed state lives between checkpoints and restarts.

:class:`~swimstream.store.sqlite.SQLiteStore` normally. When the local file cannot be
used (corrupt, or the data directory is read-only), :class:`MemoryCommitted` stands in:
the same interface, state rebuilt from the changelog into memory, so the instance keeps
serving correct state (and reports the fault) rather than stopping or guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from swimstream.store.changelog import ChangelogRow
from swimstream.store.sqlite import Keep, ShardPosition


class CommittedStore(Protocol):
    """State as of the last committed checkpoint, by agent."""

    def load(self, node_uri: str) -> dict[str, bytes] | None: ...

    def named(self, name: str) -> list[tuple[str, bytes]]: ...

    def positions(self) -> dict[int, ShardPosition]: ...

    def count(self) -> int: ...

    def known_count(self) -> int: ...

    async def write_async(
        self,
        entries: Sequence[ChangelogRow],
        positions: Mapping[int, ShardPosition],
        keep: Keep | None = None,
    ) -> None:
        """Apply ``entries`` and ``positions`` in one write; ``keep``, given the stored
        positions as the write begins (after every write queued before it), says what of
        them to write."""
        ...

    def close(self) -> None: ...


class MemoryCommitted:
    """Committed state in dicts: the fallback when SQLite cannot be used."""

    def __init__(self) -> None:
        self._state: dict[str, dict[str, bytes]] = {}
        self._positions: dict[int, ShardPosition] = {}

    def load(self, node_uri: str) -> dict[str, bytes] | None:
        stored = self._state.get(node_uri)
        return None if stored is None else dict(stored)

    def named(self, name: str) -> list[tuple[str, bytes]]:
        return [(node, names[name]) for node, names in self._state.items() if name in names]

    def positions(self) -> dict[int, ShardPosition]:
        return dict(self._positions)

    def count(self) -> int:
        return len(self._state)

    def known_count(self) -> int:
        return len(self._state)

    async def write_async(
        self,
        entries: Sequence[ChangelogRow],
        positions: Mapping[int, ShardPosition],
        keep: Keep | None = None,
    ) -> None:
        if keep is not None:
            entries, positions = keep(entries, positions, dict(self._positions))
        for node, name, value, _shard in entries:
            names = self._state.setdefault(node, {})
            if value is None:
                names.pop(name, None)
                if not names:
                    del self._state[node]
            else:
                names[name] = value
        self._positions.update(positions)

    def close(self) -> None:
        self._state.clear()
