"""``swimstream inspect``: what a local store holds, readable by people.

Shards (how far into the changelog each reflects, and the source offsets of their last
checkpoint), the agents stored, and each agent's lanes decoded to JSON, with its links
and pending timers. It opens the file read-only through sqlite-utils, so it is safe to
run next to a live instance.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from swimstream.crdt import CounterSnapshot, MapSnapshot, RegisterSnapshot, decode_snapshot
from swimstream.errors import StoreError
from swimstream.runtime.agent_record import LINKS, TIMERS, decode_links, decode_timers
from swimstream.store.entries import assemble
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
    """The store, opened so that nothing can write to it."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        connection.execute("SELECT count(*) FROM shards").fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"{path} is not a readable swimstream store: {exc}") from exc
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
        return {str(key): entry for key, _, entry in snapshot.entries}
    assert isinstance(snapshot, CounterSnapshot)
    return sum(p - n for _, p, n in snapshot.totals)


def describe(path: Path, node: str | None = None, limit: int = 20) -> Iterator[str]:
    """Lines describing one store file (one agent when ``node`` is given); StoreError
    when the file is damaged past the pages opening it reads (a store an instance set
    aside as corrupt is what one inspects after a fault)."""
    try:
        yield from _describe(path, node, limit)
    except sqlite3.Error as exc:
        raise StoreError(f"{path} is damaged: {exc}") from exc


def _describe(path: Path, node: str | None, limit: int) -> Iterator[str]:
    db = open_read_only(path)
    agents = db.execute("SELECT count(DISTINCT node) FROM state").fetchone()[0]
    yield f"{path}: {counted(agents, 'agent')}"
    for shard, offset, checkpoint, sources in db.execute(
        "SELECT shard, changelog_offset, checkpoint, sources FROM shards ORDER BY shard"
    ).fetchall():
        yield f"  shard {shard}: changelog offset {offset}, checkpoint {checkpoint}, " + (
            f"sources {sources}"
        )
    if node is not None:
        lanes = _lanes_of(db, node)
        if not lanes:
            yield f"  {node}: not stored"
        for name, value in lanes:
            yield f"  {node}#{name} = {json.dumps(value_as_json(name, value), default=str)}"
        return
    nodes = [
        row[0]
        for row in db.execute(
            "SELECT DISTINCT node FROM state ORDER BY node LIMIT ?", [limit]
        ).fetchall()
    ]
    for stored in nodes:
        yield f"  {stored}  " + "  ".join(
            f"{name}={json.dumps(value_as_json(name, value), default=str)}"
            for name, value in _lanes_of(db, stored)
        )
    if agents > len(nodes):
        yield f"  ... {agents - len(nodes)} more (--limit, or --node URI for one agent)"


def _lanes_of(db: sqlite_utils.Database, node: str) -> list[tuple[str, bytes]]:
    """An agent's stored names, map lanes assembled from their one-row-per-entry form."""
    rows = db.execute("SELECT name, value FROM state WHERE node = ? ORDER BY name", [node])
    return sorted(assemble(dict(rows.fetchall())).items())
