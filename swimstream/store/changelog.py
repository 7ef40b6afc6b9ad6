"""The changelog's record format: what a checkpoint writes, and how to read it back.

Partition p of ``<app>.changelog`` holds the state of shard p, compacted. Each record is
keyed ``<node uri>#<name>``, where name is a lane, ``@links`` or ``@timers``; its value is
the current encoded state of that name (a CRDT snapshot, or the encoded links or timers),
or null once it is gone (an agent closed its last link). A key holds the whole state of
its name, not a delta, so compaction keeps exactly the current state.

A checkpoint's records for a partition end with a **marker** (key ``@checkpoint``) that
names the checkpoint and the source offsets it commits for that shard. Every record
carries the checkpoint id in the header ``swimstream.checkpoint`` and the source offsets
that produced it in ``swimstream.source`` (JSON ``{"topic": next offset}``). Recovery
applies a checkpoint's records only once it has read its marker, and only when the
marker's offsets are no further than what the sources committed: records of a
checkpoint a crash cut short are skipped, even where the broker shows them (Tansu shows
aborted transactions to ``read_committed`` readers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MARKER_KEY = b"@checkpoint"
CHECKPOINT_HEADER = "swimstream.checkpoint"
SOURCE_HEADER = "swimstream.source"


@dataclass(frozen=True, slots=True)
class ChangelogEntry:
    """One name of one agent as of a checkpoint; value None means it is gone."""

    node_uri: str
    name: str
    value: bytes | None
    shard: int


def entry_key(node_uri: str, name: str) -> bytes:
    """The changelog key of ``name`` of the agent at ``node_uri``."""
    return f"{node_uri}#{name}".encode()


def parse_key(key: bytes) -> tuple[str, str]:
    """``(node uri, name)`` of a changelog key (node URIs quote ``#``, so the last one
    separates)."""
    node, hash_sign, name = key.decode().rpartition("#")
    if not hash_sign or not node.startswith("/"):
        raise ValueError(f"not a changelog key: {key!r}")
    return node, name


def headers(checkpoint: int, sources: Mapping[str, int]) -> list[tuple[str, bytes]]:
    """The headers every record of a checkpoint carries."""
    return [
        (CHECKPOINT_HEADER, str(checkpoint).encode()),
        (SOURCE_HEADER, json.dumps(dict(sources), sort_keys=True).encode()),
    ]


def marker_value(checkpoint: int, sources: Mapping[str, int]) -> bytes:
    """The marker that closes a checkpoint's records in one partition."""
    return json.dumps({"checkpoint": checkpoint, "sources": dict(sources)}, sort_keys=True).encode()


def read_marker(value: bytes) -> tuple[int, dict[str, int]]:
    """``(checkpoint, source offsets)`` of a marker."""
    data = json.loads(value)
    return int(data["checkpoint"]), {str(k): int(v) for k, v in data["sources"].items()}


def checkpoint_of(record_headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    """The checkpoint id a record belongs to (None for records without one)."""
    for name, value in record_headers or ():
        if name == CHECKPOINT_HEADER:
            return int(value)
    return None
