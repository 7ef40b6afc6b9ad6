"""``swimstream inspect``: what a local store holds, readable by people.

Shards (how far into the changelog each reflects, and the source offsets of their last
checkpoint), the agents stored, and each agent's lanes decoded to JSON, with its links
and pending timers. It opens the file read-only through sqlite-utils, so it is safe to
run next to a live instance.

It is what one runs on a store an instance found damaged, so it checks every CRC, as
the instance does, and shows a value that fails it, or does not decode, as damaged or
unreadable in its place (a bit flip decodes as a wrong value more often than not), then
goes on: the listing says which agents and lanes are hurt, and ends with an error.
Map keys are shown as their JSON (as stored names spell them), so that ``1`` and
``"1"``, two keys, stay two.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import sqlite_utils

from swimstream.crdt import CounterSnapshot, MapSnapshot, RegisterSnapshot, decode_snapshot
from swimstream.errors import CodecError, StoreError
from swimstream.runtime.agent_record import LINKS, TIMERS, decode_links, decode_timers
from swimstream.store.entries import assemble, split_name
from swimstream.store.sqlite import position_crc
from swimstream.text import counted


def store_files(path: Path) -> list[Path]:
    """The store file at ``path``, or every ``*.sqlite`` in the directory ``path``."""
    if path.is_dir():
        files = sorted(path.glob("*.sqlite"))
        if not files:
            raise StoreError(f"no *.sqlite store in {path}")
        return files
    if not path.exists():
        raise StoreError(f"{path} does not exist")
    return [path]


def open_read_only(path: Path) -> sqlite_utils.Database:
    """The store, opened so that nothing can write to it.

    A store in WAL mode is read through its ``-shm`` file, which SQLite creates beside
    it even to read: in a directory nobody may write (a disk mounted read-only to look
    at a failed machine's store) it cannot. With nothing in the write-ahead log, the
    file alone holds the store, and is read as unchanging; with something in it, the
    message says how to read it."""
    try:
        return _opened(path, "mode=ro")
    except sqlite3.Error as exc:
        wal = path.with_name(path.name + "-wal")
        holds_wal = wal.exists() and wal.stat().st_size > 0
        if getattr(exc, "sqlite_errorcode", 0) != sqlite3.SQLITE_CANTOPEN or holds_wal:
            if holds_wal and not os.access(path.parent, os.W_OK):
                raise StoreError(
                    f"{path} cannot be read where it is: its write-ahead log {wal.name} "
                    "holds part of it, and reading that needs a file created beside it, "
                    f"in {path.parent}, which cannot be written; copy {path.name} and "
                    f"{wal.name} into a writable directory and inspect the copy"
                ) from exc
            raise StoreError(f"{path} is not a readable swimstream store: {exc}") from exc
        try:
            return _opened(path, "immutable=1")
        except sqlite3.Error:
            raise StoreError(f"{path} is not a readable swimstream store: {exc}") from exc


def _opened(path: Path, mode: str) -> sqlite_utils.Database:
    connection = sqlite3.connect(f"file:{path}?{mode}", uri=True)
    try:
        connection.execute("SELECT count(*) FROM shards").fetchone()
    except sqlite3.Error:
        connection.close()
        raise
    return sqlite_utils.Database(connection)


def value_as_json(name: str, value: bytes) -> Any:
    """A stored value as JSON: a lane's state, an agent's links, its timers."""
    if name == LINKS:
        _, links = decode_links(value)
        return [
            {"id": link.id, "node": link.node_uri, "lane": link.lane, "join": link.join}
            for link in links
        ]
    if name == TIMERS:
        return [
            {"id": t.id, "method": t.method, "args": list(t.args), "due": t.due, "period": t.period}
            for t in decode_timers(value)
        ]
    snapshot = decode_snapshot(value)
    if isinstance(snapshot, RegisterSnapshot):
        return snapshot.value
    if isinstance(snapshot, MapSnapshot):
        return {json.dumps(key): entry for key, _, entry in snapshot.entries}
    assert isinstance(snapshot, CounterSnapshot)
    return sum(p - n for _, p, n in snapshot.totals)


def describe(path: Path, node: str | None = None, limit: int = 20) -> Iterator[str]:
    """Lines describing one store file (one agent when ``node`` is given); StoreError
    when the file is damaged past the pages opening it reads (a store an instance set
    aside as corrupt is what one inspects after a fault), or, once every line is out,
    when a value listed failed its CRC or did not decode."""
    db = open_read_only(path)
    try:
        yield from _describe(db, path, node, limit)
    except sqlite3.Error as exc:
        raise StoreError(f"{path} is damaged: {exc}") from exc
    finally:
        db.conn.close()  # (not left to the collector: it holds the file, and its disk)


def _describe(db: sqlite_utils.Database, path: Path, node: str | None, limit: int) -> Iterator[str]:
    agents = db.execute("SELECT count(DISTINCT node) FROM state").fetchone()[0]
    yield f"{path}: {counted(agents, 'agent')}"
    hurt = 0
    for shard, offset, checkpoint, sources, crc in _shard_rows(db):
        if crc is not None and position_crc(offset, checkpoint, sources) != crc:
            hurt += 1
            yield f"  shard {shard}: {DAMAGED}"
            continue
        yield f"  shard {shard}: changelog offset {offset}, checkpoint {checkpoint}, " + (
            f"sources {sources}"
        )
    if node is not None:
        node = _stored_spelling(db, node)
        lanes, damaged = _lanes_of(db, node)
        hurt += damaged
        if not lanes:
            yield f"  {node}: not stored"
        for name, shown in lanes:
            yield f"  {node}#{name} = {shown}"
    else:
        nodes = [
            row[0]
            for row in db.execute(
                "SELECT DISTINCT node FROM state ORDER BY node LIMIT ?", [limit]
            ).fetchall()
        ]
        for stored in nodes:
            lanes, damaged = _lanes_of(db, stored)
            hurt += damaged
            yield f"  {stored}  " + "  ".join(f"{name}={shown}" for name, shown in lanes)
        if agents > len(nodes):
            yield f"  ... {agents - len(nodes)} more (--limit, or --node URI for one agent)"
    if hurt:
        raise StoreError(
            f"{path}: of the values listed above, {hurt} damaged or unreadable (an "
            "instance that reads one stops, and its next start sets the file aside)"
        )


def _stored_spelling(db: sqlite_utils.Database, node: str) -> str:
    """The spelling ``node`` is stored under: as given, or with its segments in the
    canonical form agents are stored under (``swimstream.routing.quote_segment``: the
    unreserved characters as they are, every other byte percent-encoded in upper case),
    as HTTP and commands take ``/sensor/aa:bb`` for ``/sensor/aa%3Abb``. A route's fixed
    segments are never quoted, so each segment is tried both ways; as given when none
    is stored."""
    spellings = [[segment] for segment in node.split("/")]
    for choices in spellings[1:]:
        canonical = _canonical_segment(choices[0])
        if canonical != choices[0]:
            choices.append(canonical)
    if all(len(choices) == 1 for choices in spellings):
        return node
    for parts in itertools.product(*spellings):
        spelt = "/".join(parts)
        if db.execute("SELECT 1 FROM state WHERE node = ? LIMIT 1", [spelt]).fetchone():
            return spelt
    return node


def _canonical_segment(segment: str) -> str:
    """One path segment as ``swimstream.routing.quote_segment`` spells its value."""
    try:
        value = unquote(segment, errors="strict") if "%" in segment else segment
        if not value:
            return segment
        if _PLAIN.fullmatch(value) is not None:
            return value.replace(".", "%2E") if value in (".", "..") else value
        return quote(value, safe="")
    except UnicodeError:  # (escapes of no UTF-8 text, or a lone surrogate)
        return segment


_PLAIN = re.compile(r"[A-Za-z0-9\-._~]+")
"""Characters a segment holds unquoted (RFC 3986's unreserved ones)."""


DAMAGED = "<damaged: checksum mismatch>"
"""What is shown in place of a value whose CRC does not match."""


def _shard_rows(db: sqlite_utils.Database) -> list[tuple[int, int, int, str, int | None]]:
    """The ``shards`` rows, their CRC None in a file of schema 1 (set aside by an
    earlier version: it had none)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(shards)").fetchall()}
    crc = "crc" if "crc" in columns else "NULL"
    return db.execute(
        f"SELECT shard, changelog_offset, checkpoint, sources, {crc} FROM shards ORDER BY shard"
    ).fetchall()


def _lanes_of(db: sqlite_utils.Database, node: str) -> tuple[list[tuple[str, str]], int]:
    """An agent's stored names as ``(name, JSON or what is wrong with it)``, map lanes
    assembled from their one-row-per-entry form, and how many are damaged or unreadable.

    Each lane on its own: one bad value must not hide the agent's others."""
    rows = db.execute("SELECT name, value, crc FROM state WHERE node = ? ORDER BY name", [node])
    by_lane: dict[str, dict[str, bytes]] = {}
    failing: dict[str, list[str]] = {}  # lane -> its rows that fail their CRC
    for name, value, crc in rows.fetchall():
        try:
            split = split_name(name)
        except ValueError:  # (an entry's key that is not JSON: shown as is, unreadable)
            split = None
        lane = name if split is None else split[0]
        by_lane.setdefault(lane, {})[name] = bytes(value)
        if zlib.crc32(value) != crc:
            failing.setdefault(lane, []).append(name)
    shown: list[tuple[str, str]] = []
    for lane, stored in sorted(by_lane.items()):
        if lane in failing:
            rows_named = "" if failing[lane] == [lane] else f" in {', '.join(failing[lane])}"
            shown.append((lane, DAMAGED[:-1] + rows_named + ">"))
            continue
        try:
            as_json = value_as_json(lane, assemble(stored)[lane])
        except (CodecError, ValueError, TypeError) as exc:
            shown.append((lane, f"<unreadable: {exc}>"))
            continue
        shown.append((lane, json.dumps(as_json, default=str)))
    return shown, sum(1 for _, text in shown if text.startswith(("<damaged", "<unreadable")))
