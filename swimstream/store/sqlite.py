"""The local SQLite store: the committed changelog, indexed by agent, on this machine.

It holds what the changelog holds (every ``node#name`` as of the last committed
checkpoint) plus, per shard, how far into the changelog it reflects. It makes restarts
fast (recovery reads only the changelog's tail) and lets agents load lazily: an agent
is read when first used, so start-up does not grow with the number of stored agents.
Links and timers are read eagerly at start (partial indexes find them), because a
passivated agent's links and timers must work before anything touches it.

It is written only after a checkpoint committed, so it never holds state the broker
does not. Each value, and each shard's position, carries a CRC32 checked on every
read: a damaged page or a bit flip raises :class:`~swimstream.errors.StoreError`
instead of serving wrong state (a flipped offset would skip changelog records, losing
state, or re-read them).

WAL mode: one connection reads on the event loop's thread (point lookups by primary
key, tens of microseconds), another writes in a worker thread, and neither blocks the
other. ``synchronous=NORMAL``: a power cut may lose the last writes, never consistency,
and the changelog has them anyway.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from swimstream.errors import StoreError, StoreLockedError, StoreWriteError
from swimstream.runtime.agent_record import LINKS, TIMERS
from swimstream.store.changelog import ChangelogRow

SCHEMA_VERSION = "2"
"""Version 2 added the CRC of each shard's position. A file of another version is
refused at open and so set aside and rebuilt from the changelog, like a damaged one."""

_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
"""SQLite's primary result codes that mean the file itself is damaged."""

RECOUNT_AFTER = 30.0
"""Seconds a count of the stored agents stays good enough for metrics."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    crc INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    PRIMARY KEY (node, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS state_links ON state (node) WHERE name = '{LINKS}';
CREATE INDEX IF NOT EXISTS state_timers ON state (node) WHERE name = '{TIMERS}';
CREATE TABLE IF NOT EXISTS shards (
    shard INTEGER PRIMARY KEY,
    changelog_offset INTEGER NOT NULL,
    checkpoint INTEGER NOT NULL,
    sources TEXT NOT NULL,
    crc INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class ShardPosition:
    """How far the store reflects one shard's changelog partition."""

    changelog_offset: int
    """The next changelog offset to read."""
    checkpoint: int
    """The last checkpoint applied."""
    sources: dict[str, int]
    """The source offsets that checkpoint committed (``{topic: next offset}``)."""


Keep = Callable[
    [Sequence[ChangelogRow], Mapping[int, ShardPosition], Mapping[int, ShardPosition]],
    tuple[Sequence[ChangelogRow], Mapping[int, ShardPosition]],
]
"""What of a write to make, given its entries, its positions and the positions stored
when it begins (see :meth:`SQLiteStore.write`)."""


class SQLiteStore:
    """One instance's SQLite file (see the module docstring)."""

    def __init__(self, path: Path | str, changelog: str | None = None) -> None:
        """``changelog``: the topic whose state the file holds, recorded in a file that
        names none yet (see :meth:`changelog`)."""
        self.path = Path(path)
        self._changelog = changelog
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="swimstream-sqlite")
        self._known_count = 0
        self._counted_at = -RECOUNT_AFTER

    @property
    def suspect_marker(self) -> Path:
        """A file left beside the store when a read found it damaged."""
        return self.path.with_name(self.path.name + ".suspect")

    def open(self) -> SQLiteStore:
        """Open (creating it if new), check it is readable and writable; StoreError if not."""
        if self.suspect_marker.exists():
            raise StoreError(
                f"{self.path} was found damaged in an earlier run ({self.suspect_marker})"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._worker.submit(self._connect).result()
            self._worker.submit(self._prepare).result()
            self._reader = self._connect()
            self._reader.execute("SELECT count(*) FROM shards").fetchone()
            self._worker.submit(self._recount)  # in the background: start-up does not wait
        except (sqlite3.Error, OSError) as exc:
            self.close()
            if getattr(exc, "sqlite_errorcode", None) in (
                sqlite3.SQLITE_BUSY,
                sqlite3.SQLITE_LOCKED,
            ):
                raise StoreLockedError(
                    f"the local store {self.path} is locked by another process (held past "
                    "SQLite's 5 s wait): end that process's transaction, or give this "
                    "instance a store.path of its own"
                ) from exc
            raise StoreError(f"the local store {self.path} cannot be used: {exc}") from exc
        try:
            # Every start reads them first: a damaged one must be found here, where the
            # caller sets the file aside, not later, where it would stop every start.
            self.positions()
        except StoreError:
            self.close()
            raise
        return self

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA cache_size=-65536")  # 64 MiB: a million agents' index
        return connection

    def _prepare(self) -> None:
        writer = self._require(self._writer)
        writer.executescript(_SCHEMA)
        row = writer.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            writer.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema {row[0]}, this build reads {SCHEMA_VERSION}")
        if self._changelog is not None:
            claim = "INSERT OR IGNORE INTO meta VALUES ('changelog', ?)"
            writer.execute(claim, (self._changelog,))
        writer.execute("UPDATE meta SET value = value WHERE key = 'schema'")  # proves writability

    def close(self) -> None:
        """Stop the worker, then close both connections.

        In that order: the worker may be using the writer (a write, or the background
        count queued at open), and closing a connection under a running statement
        crashes the interpreter rather than raising."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        for connection in (self._reader, self._writer):
            if connection is not None:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
        self._reader = self._writer = None

    @staticmethod
    def _require(connection: sqlite3.Connection | None) -> sqlite3.Connection:
        if connection is None:
            raise StoreError("the local store is not open")
        return connection

    # -- reading (the loop's thread) -----------------------------------------------------

    def load(self, node_uri: str) -> dict[str, bytes] | None:
        """Every stored name of one agent, or None; StoreError when a value is damaged."""
        try:
            rows = (
                self._require(self._reader)
                .execute(
                    "SELECT name, value, crc FROM state WHERE node = ? AND name != ?",
                    (node_uri, TIMERS),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._damaged(f"reading {node_uri}", exc) from exc
        if not rows:
            return None
        stored = {}
        for name, value, crc in rows:
            if zlib.crc32(value) != crc:
                raise self._damaged(f"reading {node_uri}#{name}", "checksum mismatch")
            stored[name] = bytes(value)
        return stored

    def named(self, name: str) -> list[tuple[str, bytes]]:
        """``(node, value)`` of every agent holding ``name`` (links, timers)."""
        try:
            rows = (
                self._require(self._reader)
                .execute("SELECT node, value, crc FROM state WHERE name = ?", (name,))
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._damaged(f"reading {name}", exc) from exc
        for node, value, crc in rows:
            if zlib.crc32(value) != crc:
                raise self._damaged(f"reading {node}#{name}", "checksum mismatch")
        return [(node, bytes(value)) for node, value, _ in rows]

    def changelog(self) -> str | None:
        """The changelog topic whose state the file holds: the one named when it was
        first opened for one (None in a file from before it was recorded)."""
        try:
            row = (
                self._require(self._reader)
                .execute("SELECT value FROM meta WHERE key = 'changelog'")
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._damaged("reading its changelog", exc) from exc
        return None if row is None else str(row[0])

    def positions(self) -> dict[int, ShardPosition]:
        """Per shard, how far into the changelog the store reflects; StoreError (the
        file marked damaged) when a position fails its CRC or does not parse."""
        return self._positions_with(self._require(self._reader))

    def _positions_with(self, connection: sqlite3.Connection) -> dict[int, ShardPosition]:
        try:
            rows = connection.execute(
                "SELECT shard, changelog_offset, checkpoint, sources, crc FROM shards"
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._damaged("reading shard positions", exc) from exc
        positions = {}
        for shard, offset, checkpoint, sources, crc in rows:
            what = f"reading shard {shard}'s position"
            if position_crc(offset, checkpoint, sources) != crc:
                raise self._damaged(what, "checksum mismatch")
            try:
                cut = json.loads(sources)
                if not isinstance(cut, dict):
                    raise TypeError(f"sources are {type(cut).__name__}, not an object")
            except (ValueError, TypeError) as exc:
                raise self._damaged(what, exc) from exc
            positions[shard] = ShardPosition(offset, checkpoint, cut)
        return positions

    def count(self) -> int:
        """How many agents are stored (a scan of the whole table: see :meth:`known_count`)."""
        return self._count_with(self._require(self._reader))

    def known_count(self) -> int:
        """How many agents were stored when last counted: at most :data:`RECOUNT_AFTER`
        seconds before a local write (0 until the first count, made in the store's
        thread when it opens). For metrics, which must not scan a million agents on the
        event loop at every scrape (a full scan takes a good fraction of a second)."""
        return self._known_count

    def _count_with(self, connection: sqlite3.Connection) -> int:
        row = connection.execute("SELECT count(DISTINCT node) FROM state").fetchone()
        return int(row[0])

    def _recount(self) -> None:
        """In the store's thread: count the agents again if the last count is old."""
        if time.monotonic() - self._counted_at < RECOUNT_AFTER or self._writer is None:
            return
        with contextlib.suppress(sqlite3.Error):
            self._known_count = self._count_with(self._writer)
            self._counted_at = time.monotonic()

    def _damaged(self, what: str, cause: object) -> StoreError:
        with contextlib.suppress(OSError):
            self.suspect_marker.write_text(f"{what}: {cause}\n")
        return StoreError(f"the local store {self.path} is damaged ({what}: {cause})")

    # -- writing (the worker's thread) ---------------------------------------------------

    def write(
        self,
        entries: Sequence[ChangelogRow],
        positions: Mapping[int, ShardPosition],
        keep: Keep | None = None,
    ) -> None:
        """Apply one checkpoint's entries and shard positions in one transaction (what
        ``keep`` keeps of them, given the positions stored when it begins).

        Call from the worker (:meth:`write_async`) so the loop never waits on the disk.
        """
        writer = self._require(self._writer)
        if keep is not None:
            entries, positions = keep(entries, positions, self._positions_with(writer))
        try:
            writer.execute("BEGIN")
            _apply_in_order(writer, entries)
            writer.executemany(
                "INSERT OR REPLACE INTO shards VALUES (?, ?, ?, ?, ?)",
                [_position_row(shard, p) for shard, p in positions.items()],
            )
            writer.execute("COMMIT")
            self._recount()
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                writer.execute("ROLLBACK")
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGED:
                # Opening reads only the first pages: a file cut short or overwritten
                # further in (a crash, a bad disk) is found here, at every start. Marked,
                # it is moved aside and rebuilt instead of stopping each start in turn.
                raise self._damaged("writing", exc) from exc
            raise StoreWriteError(f"writing the local store {self.path}: {exc}") from exc

    async def write_async(
        self,
        entries: Sequence[ChangelogRow],
        positions: Mapping[int, ShardPosition],
        keep: Keep | None = None,
    ) -> None:
        """:meth:`write` in the store's worker thread, after every write queued before."""
        import asyncio

        await asyncio.get_running_loop().run_in_executor(
            self._worker, self.write, entries, positions, keep
        )


def position_crc(changelog_offset: int, checkpoint: int, sources: str) -> int:
    """The CRC32 of one shard's stored position, over all three of its columns."""
    return zlib.crc32(f"{changelog_offset} {checkpoint} {sources}".encode())


def _position_row(shard: int, position: ShardPosition) -> tuple[int, int, int, str, int]:
    """One row of the ``shards`` table."""
    sources = json.dumps(position.sources, sort_keys=True)
    crc = position_crc(position.changelog_offset, position.checkpoint, sources)
    return (shard, position.changelog_offset, position.checkpoint, sources, crc)


CHUNK_ROWS = 2000
"""Rows per statement when writing. ``executemany`` steps once per row, and every step
lets go of the interpreter and takes it back: thousands of hand-overs a write, each
one making the event loop's thread wait for its turn (measured: local writes cost the
agents about a third of their throughput that way). One statement per 2,000 rows hands
over once per chunk; 10,000 parameters stay well under SQLite's limit (32,766)."""

_UPSERT = (
    "INSERT INTO state VALUES {} ON CONFLICT (node, name) DO UPDATE"
    " SET value = excluded.value, crc = excluded.crc, shard = excluded.shard",
    "(?, ?, ?, ?, ?)",
    5,
)
"""An upsert rather than ``INSERT OR REPLACE``, which deletes the old row and inserts a
new one: updating in place took about an eighth less of the writer's CPU per row."""
_DELETE = (
    "DELETE FROM state WHERE (node, name) IN (SELECT column1, column2 FROM (VALUES {}))",
    "(?, ?)",
    2,
)
"""Through a subquery: SQLite answers ``(node, name) IN (VALUES ...)`` of two rows or
more by scanning the whole table, once per statement (a bounded map lane removes an
entry at every change, so a write holds one such statement per changed agent), while a
``SELECT`` over the values looks each one up by the primary key."""


def _apply_in_order(connection: sqlite3.Connection, entries: Iterable[ChangelogRow]) -> None:
    """The last write of each name (several checkpoints may be in one write, and a name
    removed in one may be put back in the next), as chunked statements: puts, then
    removals. One write per name is left, so their order does not matter: they go in
    key order, which SQLite applies with a seventh less CPU than the checkpoints' order
    (each row's B-tree descent starts where the last one ended, in pages still warm).
    Parameters are built flat, as the statement takes them: this runs in the store's
    thread, and its Python work is time the event loop cannot have.

    Values are bound as bytearrays: CPython's ``sqlite3`` binds an int, a float, a str
    or a bytearray as it is, but sends ``bytes`` through its adapter look-up, which asks
    the protocol type for ``__adapt__`` and formats (then drops) an AttributeError each
    time. Both are bound as the same blob; the copy costs less than the look-up (a
    write of the towers app's checkpoints: 15% fewer instructions, callgrind)."""
    crc32 = zlib.crc32
    blob = bytearray()  # blob + value: a new bytearray of the value, without a type call
    # A name written by several checkpoints: its last write only.
    latest = {(entry[0], entry[1]): entry for entry in entries}
    puts: list[object] = []
    removals: list[object] = []
    # Sorted as tuples: each (node, name) is there once, so no two compare their values.
    for node, name, value, shard in sorted(latest.values()):
        if value is None:
            removals += (node, name)
        else:
            puts += (node, name, blob + value, crc32(value), shard)
    _run_chunks(connection, _UPSERT, puts)
    _run_chunks(connection, _DELETE, removals)


def _run_chunks(
    connection: sqlite3.Connection, statement: tuple[str, str, int], params: list[object]
) -> None:
    """Run a statement over flat ``params``, up to :data:`CHUNK_ROWS` rows at a time."""
    sql, row, width = statement
    step = CHUNK_ROWS * width
    full = sql.format(", ".join([row] * CHUNK_ROWS))
    for start in range(0, len(params), step):
        chunk = params[start : start + step]
        rows = len(chunk) // width
        connection.execute(
            full if rows == CHUNK_ROWS else sql.format(", ".join([row] * rows)), chunk
        )
