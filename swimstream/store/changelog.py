"""The changelog's record format: what a checkpoint writes, and how to read it back.

Partition p of ``<app>.changelog`` holds the state of shard p, compacted. Each record is
keyed ``<node uri>#<name>``, where name is a lane, ``@links`` or ``@timers``; its value is
the current encoded state of that name (a CRDT snapshot, or the encoded links or timers),
or null once it is gone (an agent closed its last link). A key holds the whole state of
its name, not a delta, so compaction keeps exactly the current state.

A checkpoint's records for a partition end with a **marker** (key ``@checkpoint``) that
names the checkpoint and its cut: the source offsets of *every* source partition. (A
shard's state depends on every partition, not only its own: a tower's summary changes
with readings of devices in other shards, through links and commands.) Every record
carries the checkpoint id in the header ``swimstream.checkpoint`` and the cut that
produced it in ``swimstream.source`` (JSON ``{"topic/partition": next offset}``).
Recovery applies a checkpoint's records only once it has read its marker, and only when
the sources committed the whole cut: records of a checkpoint a crash cut short are
skipped, even where the broker shows them (Tansu shows aborted transactions to
``read_committed`` readers).

A marker also names its incarnation's lineage: the instance that wrote it
(``instance``), the checkpoint it restored from (``restored_from``) and its own first
checkpoint (``first``). Every id of that instance between the two belongs to an earlier
incarnation of it that crashed before committing it, whatever the source offsets say
later (a later incarnation commits past the same offsets with state of its own): a
rebuild from the changelog alone must not apply them. Other instances of the app write
to the same changelog meanwhile, with ids in that range too: those are theirs to judge.

A checkpoint is whole only with its marker in *every* partition: a crash between two
partitions' markers leaves one half closed, and where the cut did not move (a change by a
timer or an HTTP command only) the sources' offsets cannot tell. Recovery applies a
checkpoint when it read its marker in every partition it read, or read a later
checkpoint of the same instance (the next cut waits for the last commit). Markers are
keyed per instance (``@checkpoint/<instance>``), so compaction, which keeps the newest
record of each key, keeps each instance's last marker in every partition: the one
checkpoint no later one vouches for.

Every record restates its marker's lineage (header ``swimstream.writer``), because
compaction removes all but an instance's newest marker. A group whose marker compaction
removed is judged by its records' headers as by the marker (its cut committed, no later
incarnation of its writer saying it was cut short). Only its completeness goes
unchecked: the one way a group is partial and yet its cut committed is a crash
mid-checkpoint followed by another member's replay of the same records, whose writes of
the same names come later in the log and win.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

MARKER_KEY = b"@checkpoint"
"""The key of a marker of an instance without a name (markers written before they were
keyed per instance, and tests)."""
CHECKPOINT_HEADER = "swimstream.checkpoint"
SOURCE_HEADER = "swimstream.source"
WRITER_HEADER = "swimstream.writer"


class ChangelogEntry(NamedTuple):
    """One name of one agent as of a checkpoint; value None means it is gone.

    A named tuple, made several times faster than a frozen dataclass (recovery makes one
    per changelog record it reads); a checkpoint's collect makes plain tuples of the
    same fields (:data:`ChangelogRow`)."""

    node_uri: str
    name: str
    value: bytes | None
    shard: int


ChangelogRow = tuple[str, str, bytes | None, int]
"""A changelog entry as a plain tuple: :class:`ChangelogEntry`'s fields, in its order.

What a checkpoint's collect makes and its produce and local write take (read by
unpacking or index, never by field name): a plain tuple is built by one bytecode, a
named tuple by a type call, which was a tenth of collect's instructions. A
:class:`ChangelogEntry` is one too."""


def entry_key(node_uri: str, name: str) -> bytes:
    """The changelog key of ``name`` of the agent at ``node_uri``."""
    return f"{node_uri}#{name}".encode()


def parse_key(key: bytes) -> tuple[str, str]:
    """``(node uri, name)`` of a changelog key. The first ``#`` separates: node URIs
    quote it (``%23``), while a name may hold it (a map entry's key is in its name)."""
    node, hash_sign, name = key.decode().partition("#")
    if not hash_sign or not node.startswith("/"):
        raise ValueError(f"not a changelog key: {key!r}")
    return node, name


_INSTANCE_MARKER = MARKER_KEY + b"/"


def marker_key(instance: str) -> bytes:
    """The key of ``instance``'s markers: one per instance, so that compaction keeps the
    last marker of each (see the module docstring)."""
    return _INSTANCE_MARKER + instance.encode() if instance else MARKER_KEY


def is_marker_key(key: bytes) -> bool:
    """Whether a changelog key is a marker's (no entry's key: those start with ``/``)."""
    return key == MARKER_KEY or key.startswith(_INSTANCE_MARKER)


def headers(
    checkpoint: int, sources: Mapping[str, int], writer: Marker | None = None
) -> list[tuple[str, bytes]]:
    """The headers every record of a checkpoint carries; ``writer`` is its marker, whose
    lineage they restate."""
    listed = [
        (CHECKPOINT_HEADER, str(checkpoint).encode()),
        (SOURCE_HEADER, json.dumps(dict(sources), sort_keys=True).encode()),
    ]
    if writer is not None:
        lineage = [writer.instance, writer.restored_from, writer.first]
        listed.append((WRITER_HEADER, json.dumps(lineage).encode()))
    return listed


def restated_marker(record_headers: Sequence[tuple[str, bytes]] | None) -> Marker | None:
    """The marker a record's headers restate, or None for records from before they did."""
    found = dict(record_headers or ())
    writer = found.get(WRITER_HEADER)
    checkpoint = found.get(CHECKPOINT_HEADER)
    sources = found.get(SOURCE_HEADER)
    if writer is None or checkpoint is None or sources is None:
        return None
    instance, restored_from, first = json.loads(writer)
    cut = _cut(json.loads(sources))
    return Marker(int(checkpoint), cut, int(restored_from), int(first), str(instance))


def _cut(sources: Mapping[object, object]) -> dict[str, int]:
    """A cut as a marker or a header holds it; ValueError when a key names no source
    partition (a record another producer wrote: recovery checks its cut against the
    sources, which would fail there, outside the reading of the record)."""
    cut = {str(k): int(v) for k, v in sources.items()}  # type: ignore[call-overload]
    for key in cut:
        parse_cut_key(key)
    return cut


def cut_key(topic: str, partition: int) -> str:
    """How a source partition is named in a cut."""
    return f"{topic}/{partition}"


def parse_cut_key(key: str) -> tuple[str, int]:
    """``(topic, partition)`` of a cut key."""
    topic, _, partition = key.rpartition("/")
    return topic, int(partition)


@dataclass(frozen=True, slots=True)
class Marker:
    """What closes a checkpoint's records in one partition (see the module docstring)."""

    checkpoint: int
    sources: dict[str, int]
    """The cut: ``{"topic/partition": next offset}`` of every source partition."""
    restored_from: int = 0
    """The committed checkpoint this incarnation started from."""
    first: int = 0
    """This incarnation's first checkpoint id."""
    instance: str = ""
    """The instance that wrote it (``mesh.instance_id``; empty in markers from before)."""

    def cut_short(self, instance: str, checkpoint: int) -> bool:
        """Whether ``checkpoint``, written by ``instance``, belongs to an earlier
        incarnation of this marker's instance that never committed it."""
        return instance == self.instance and self.restored_from < checkpoint < self.first


def marker_value(marker: Marker) -> bytes:
    """A marker's record value."""
    return json.dumps(
        {
            "checkpoint": marker.checkpoint,
            "sources": dict(marker.sources),
            "restored_from": marker.restored_from,
            "first": marker.first,
            "instance": marker.instance,
        },
        sort_keys=True,
    ).encode()


def read_marker(value: bytes) -> Marker:
    """The marker a record value holds."""
    data = json.loads(value)
    checkpoint = int(data["checkpoint"])
    return Marker(
        checkpoint,
        _cut(data["sources"]),
        int(data.get("restored_from", 0)),
        int(data.get("first", checkpoint)),
        str(data.get("instance", "")),
    )


def checkpoint_of(record_headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    """The checkpoint id a record belongs to (None for records without one)."""
    for name, value in record_headers or ():
        if name == CHECKPOINT_HEADER:
            return int(value)
    return None
