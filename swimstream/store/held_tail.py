"""The changelog tail recovery holds until every checkpoint in it is judged.

Recovery cannot apply a checkpoint's records as it reads them: whether the checkpoint
stands is known only at its marker, in every partition, or at the end of the read (see
:mod:`swimstream.store.recovery`). So the tail is held whole, in groups (one per
checkpoint and partition), and the groups that stand are written at the end, in key
order. Held in memory, a record costs some 200 bytes besides its value: a store rebuilt
from a changelog of tens of millions of records, as a new machine does, would need more
memory than the instance has, and an instance that runs out of memory while restoring
never starts. Past :data:`SPILL_AFTER` records, the held records go to a temporary
SQLite file instead (beside the local store), which sorts them on disk at the end; a
restore of a hand-over's usual tail never spills.
"""

from __future__ import annotations

import logging
import operator
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from swimstream.store.changelog import ChangelogEntry

SPILL_AFTER: Final = 2_000_000
"""Records held in memory (some 600 MB with the towers app's values) before they go to
disk."""

log = logging.getLogger("swimstream.recovery")

_SPILL_BATCH: Final = 10_000
"""Records buffered before one insert into the spill file."""


class HeldTail:
    """Groups of changelog entries, in memory or spilled to a temporary file.

    A group is named by the number :meth:`group` gave it; :meth:`ordered` yields the
    entries of the groups asked for, sorted by (node, name), each name's entries in the
    order of the groups asked for and then of their reading: the last one wins.
    """

    def __init__(self, spill_after: int | None = None, spill_dir: Path | None = None) -> None:
        """``spill_dir``: where the spill file goes (beside the local store: its volume
        is sized for state, where a container's temporary directory may not be); the
        temporary directory by default."""
        self._spill_after = SPILL_AFTER if spill_after is None else spill_after
        self._spill_dir = spill_dir
        self._groups: list[list[ChangelogEntry]] = []
        self._sizes: list[int] = []
        self._held = 0
        self._spelt: dict[str, str] = {}
        self._spill: _Spill | None = None

    def group(self) -> int:
        """A new, empty group."""
        self._groups.append([])
        self._sizes.append(0)
        return len(self._groups) - 1

    def add(self, group: int, node: str, name: str, value: bytes | None, shard: int) -> None:
        self._sizes[group] += 1
        if self._spill is not None:
            self._spill.add(group, ChangelogEntry(node, name, value, shard))
            return
        # One string for each node URI and lane name, not one per record: a third less
        # of the held tail's memory. (A map entry's name holds its key: seldom repeated.)
        spelt = self._spelt
        node = spelt.setdefault(node, node)
        if "#" not in name:
            name = spelt.setdefault(name, name)
        self._groups[group].append(ChangelogEntry(node, name, value, shard))
        self._held += 1
        if self._held > self._spill_after:
            self._spill = _Spill(self._spill_dir)
            log.info(
                "restoring state: more than %s changelog records to hold until their "
                "checkpoints are judged, so they go to %s, removed once restored",
                f"{self._spill_after:,}",
                self._spill.path,
                extra={"spill_file": str(self._spill.path)},
            )
            for number, entries in enumerate(self._groups):
                for held in entries:
                    self._spill.add(number, held)
                entries.clear()
            self._held = 0
            self._spelt.clear()  # (it would grow with every agent)

    def size(self, groups: Sequence[int]) -> int:
        return sum(self._sizes[group] for group in groups)

    def drop(self, groups: Sequence[int]) -> None:
        """Let go of groups that will not be applied (in memory; a spill file keeps
        them until it is removed)."""
        for group in groups:
            self._held -= len(self._groups[group])
            self._groups[group] = []

    def ordered(self, groups: Sequence[int], batch: int) -> Iterator[list[ChangelogEntry]]:
        """The entries of ``groups`` in key order, ``batch`` at a time."""
        if self._spill is not None:
            yield from self._spill.ordered(groups, batch)
            return
        applied = [entry for group in groups for entry in self._groups[group]]
        # A stable sort keeps each name's writes in checkpoint order, so the last still
        # wins; in key order, SQLite fills its B-tree from one end, 1.7 times faster
        # than the changelog's order when a whole store is rebuilt.
        applied.sort(key=operator.itemgetter(0, 1))
        for first in range(0, len(applied), batch):
            yield applied[first : first + batch]

    def close(self) -> None:
        self._groups.clear()
        if self._spill is not None:
            self._spill.close()


class _Spill:
    """Held records in a SQLite file of their own, removed on close."""

    def __init__(self, directory: Path | None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="swimstream-restore-", dir=directory))
        # Removed however the restore ends: a stop or a failure mid-read raises past
        # the close at the end, and the file may be gigabytes.
        self._removed = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self.path = self._dir / "tail.sqlite3"
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE held (grp INTEGER, node TEXT, name TEXT, value BLOB, shard INTEGER);
            """
        )
        self._buffer: list[tuple[int, str, str, bytes | None, int]] = []

    def add(self, group: int, entry: ChangelogEntry) -> None:
        self._buffer.append((group, *entry))
        if len(self._buffer) >= _SPILL_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._db.executemany("INSERT INTO held VALUES (?, ?, ?, ?, ?)", self._buffer)
            self._buffer.clear()

    def ordered(self, groups: Sequence[int], batch: int) -> Iterator[list[ChangelogEntry]]:
        self._flush()
        self._db.execute("CREATE TEMP TABLE chosen (grp INTEGER PRIMARY KEY, ord INTEGER)")
        chosen = [(group, at) for at, group in enumerate(groups)]
        self._db.executemany("INSERT INTO chosen VALUES (?, ?)", chosen)
        rows = self._db.execute(
            "SELECT node, name, value, shard FROM held JOIN chosen USING (grp) "
            "ORDER BY node, name, ord, held.rowid"
        )
        while True:
            chunk = rows.fetchmany(batch)
            if not chunk:
                return
            yield [ChangelogEntry(*row) for row in chunk]

    def close(self) -> None:
        self._db.close()
        self._removed()
