"""Recovery at start: bring committed state up to the last committed checkpoint.

The local store knows, per shard, how far into the changelog it reflects. Recovery reads
each changelog partition from there to its end, groups the records by checkpoint, and
applies a group when it reads the group's marker, if the sources committed that
checkpoint (the marker's source offsets are within the group's committed offsets). A
group without a marker, or whose offsets the sources never committed, was cut short by
a crash and is skipped: its effects will be recomputed when the sources replay from
their committed offsets. With the local store gone, it reads every partition from the
beginning: the same code, a longer tail, and a progress line while it runs.

The cost is proportional to the tail, not to the number of stored agents: agents are
loaded lazily afterwards, each on its first use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from swimstream.store.changelog import MARKER_KEY, ChangelogEntry, parse_key, read_marker
from swimstream.store.committed import CommittedStore
from swimstream.store.sqlite import ShardPosition
from swimstream.streams.connector import ChangelogReader, InboundRecord, TopicPartition

log = logging.getLogger("swimstream.recovery")

WRITE_BATCH = 50_000
"""Entries applied to committed state per write while rebuilding."""


@dataclass
class RecoveryReport:
    """What recovery did, for the log and the tests."""

    records: int = 0
    applied_checkpoints: int = 0
    last_checkpoint: int = 0
    """The highest checkpoint id seen, committed or not: new ones must be higher."""
    committed_through: int = 0
    """The highest committed checkpoint id the store now reflects."""
    skipped_records: int = 0
    """Records of checkpoints that never committed (cut short by a crash)."""
    skipped_checkpoints: list[int] = field(default_factory=list)
    seconds: float = 0.0


class _Progress:
    """A progress line at most every second while a long tail is read."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, done: int, expected: int) -> None:
        now = time.monotonic()
        if now - self._last < 1.0 and done < expected:
            return
        self._last = now
        share = f" ({done / expected:.0%})" if expected else ""
        log.info(
            "restoring state from %s: %s of about %s records%s, %.1f s",
            self._topic,
            f"{done:,}",
            f"{expected:,}",
            share,
            now - self._started,
        )


async def recover(
    committed: CommittedStore,
    reader: ChangelogReader,
    topic: str,
    partitions: int,
    committed_sources: Mapping[TopicPartition, int],
) -> RecoveryReport:
    """Apply the changelog's committed tail to ``committed``; see the module docstring."""
    started = time.monotonic()
    report = RecoveryReport()
    known = committed.positions()
    start = {p: known[p].changelog_offset if p in known else 0 for p in range(partitions)}
    report.committed_through = max((p.checkpoint for p in known.values()), default=0)
    report.last_checkpoint = report.committed_through
    pending: dict[int, list[ChangelogEntry]] = {}
    ready: list[ChangelogEntry] = []
    positions: dict[int, ShardPosition] = {}

    def on_records(batch: Sequence[InboundRecord]) -> None:
        for record in batch:
            report.records += 1
            partition = record.partition() or 0
            key = record.key()
            if key == MARKER_KEY:
                _close_group(record, partition)
            elif key is not None:
                node, name = parse_key(key)
                pending.setdefault(partition, []).append(
                    ChangelogEntry(node, name, record.value(), partition)
                )

    def _close_group(record: InboundRecord, partition: int) -> None:
        checkpoint, sources = read_marker(record.value() or b"{}")
        report.last_checkpoint = max(report.last_checkpoint, checkpoint)
        group = pending.pop(partition, [])
        if _was_committed(sources, partition, committed_sources):
            ready.extend(group)
            report.applied_checkpoints += 1
            report.committed_through = max(report.committed_through, checkpoint)
        else:
            report.skipped_records += len(group)
            if checkpoint not in report.skipped_checkpoints:
                report.skipped_checkpoints.append(checkpoint)
        positions[partition] = ShardPosition((record.offset() or 0) + 1, checkpoint, sources)

    progress = _Progress(topic)
    await reader.read(topic, start, on_records, progress)
    for group in pending.values():  # records after the last marker: a checkpoint cut short
        report.skipped_records += len(group)
    for first in range(0, max(len(ready), 1), WRITE_BATCH):
        last = first + WRITE_BATCH >= len(ready)
        await committed.write_async(ready[first : first + WRITE_BATCH], positions if last else {})
    report.seconds = time.monotonic() - started
    log.info(
        "restored %s: %d changelog records read, %d checkpoints applied, %d records of %d "
        "uncommitted checkpoints skipped, in %.1f s",
        topic,
        report.records,
        report.applied_checkpoints,
        report.skipped_records,
        len(report.skipped_checkpoints),
        report.seconds,
        extra={
            "skipped_checkpoints": report.skipped_checkpoints,
            "committed_through": report.committed_through,
        },
    )
    return report


def _was_committed(
    sources: Mapping[str, int], partition: int, committed: Mapping[TopicPartition, int]
) -> bool:
    """Whether the sources committed at least the offsets a checkpoint's marker names."""
    return all(
        committed.get(TopicPartition(topic, partition), 0) >= offset
        for topic, offset in sources.items()
    )
