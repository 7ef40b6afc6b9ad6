"""Recovery at start: bring committed state up to the last committed checkpoint.

The local store knows, per shard, how far into the changelog it reflects. Recovery reads
each changelog partition from there to its end, groups the records by the checkpoint id
each carries, and applies a group when it reads that checkpoint's marker, if the
sources committed it (the marker's source offsets are within the group's committed
offsets). A group without a marker, or whose offsets the sources never committed, was
cut short by a crash and is skipped: its effects will be recomputed when the sources
replay from their committed offsets. (A group before a later marker and without its
own lost it to compaction: it is judged by the marker its records restate, at the end
of the read, and applied in its place in the log.) Grouping by id, not by position,
matters where a broker shows aborted transactions (Tansu): a crash mid-checkpoint can
leave part of a checkpoint's records in the log, and they must not join the next
checkpoint's group.
Markers name their instance and its incarnation's lineage (see
:mod:`swimstream.store.changelog`), so a checkpoint an incarnation crashed before
committing is skipped even once a later incarnation of that instance commits past its
offsets, while the checkpoints other instances committed meanwhile are applied. (Their
records interleave in a partition, so a marker says nothing of records of lower ids
still waiting for theirs: only a group never closed by its marker is skipped.) A
checkpoint is applied in every partition or in none: it needs its marker in each
partition read, or a later checkpoint of its instance, begun only once it committed
(see :mod:`swimstream.store.changelog`); one closed in some partitions only (a crash
between markers, or another instance's checkpoint still in flight) is skipped and read
again next time. With
the local store gone, it reads every partition from the beginning: the same code, a
longer tail, and a progress line while it runs.

The cost is proportional to the tail, not to the number of stored agents: agents are
loaded lazily afterwards, each on its first use. The tail is held until its checkpoints
are judged, on disk past a limit (:mod:`swimstream.store.held_tail`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from swimstream.store.changelog import (
    Marker,
    checkpoint_of,
    is_marker_key,
    parse_cut_key,
    parse_key,
    read_marker,
    restated_marker,
)
from swimstream.store.committed import CommittedStore
from swimstream.store.held_tail import HeldTail
from swimstream.store.sqlite import ShardPosition, SQLiteStore
from swimstream.streams.connector import ChangelogReader, InboundRecord, TopicPartition
from swimstream.text import counted

log = logging.getLogger("swimstream.recovery")

WRITE_BATCH = 50_000
"""Entries applied to committed state per write while rebuilding."""

_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError)
"""What reading a record another producer wrote raises (bad UTF-8 and JSON are
ValueErrors; JSON of another shape the others)."""

PROGRESS_EVERY = 1.0
"""Seconds between progress lines while a long tail is read, then written."""


class RestoreStopped(Exception):
    """Stop was asked for during recovery; the local store is as it was before it."""


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
    cuts: dict[int, dict[str, int]] = field(default_factory=dict)
    """Per changelog partition read, the highest source offsets of the checkpoints
    applied from it (``{cut key: next offset}``): what the restored state holds of each
    source partition, so a shard taken over from another instance resumes there."""
    changed: set[str] = field(default_factory=set)
    """The agents whose stored state the applied checkpoints changed."""


class _Progress:
    """A progress line at most every :data:`PROGRESS_EVERY` seconds while a long tail
    is read, then while the restored state is written: at a million agents the write
    takes tens of seconds, and a log silent after "100%" looks like a hung start."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._last = 0.0
        self._started = time.monotonic()
        self._shown: tuple[int, int] | None = None

    def __call__(self, done: int, expected: int) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY and done < expected:
            return
        if self._shown == (done, expected):
            return  # (the reader's last word repeats the figure its last batch showed)
        self._last, self._shown = now, (done, expected)
        share = f" ({done / expected:.0%})" if expected else ""
        log.info(
            "restoring state from %s: %s of about %s%s, %.1f s",
            self._topic,
            f"{done:,}",
            counted(expected, "record", grouped=True),
            share,
            now - self._started,
            extra={"topic": self._topic},
        )

    def writing(self, written: int, total: int) -> None:
        """Before the restored state is written in several writes (``written`` 0), and
        after each one when the last line is old enough."""
        now = time.monotonic()
        if written and now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        entries = counted(total, "entry", "entries", grouped=True)
        done = f"{written:,} of {entries} written" if written else f"writing {entries}"
        log.info(
            "restoring state from %s: %s to the local store, %.1f s",
            self._topic,
            done,
            now - self._started,
            extra={"topic": self._topic},
        )


async def recover(
    committed: CommittedStore,
    reader: ChangelogReader,
    topic: str,
    partitions: int,
    committed_sources: Mapping[TopicPartition, int],
    stopping: Callable[[], bool] = lambda: False,
    *,
    checked: Collection[TopicPartition] | None = None,
    shards: Collection[int] | None = None,
    spill_after: int | None = None,
) -> RecoveryReport:
    """Apply the changelog's committed tail to ``committed``; see the module docstring.

    ``checked`` names the source partitions whose offsets the consumer group keeps
    (Kafka's), the only ones a cut can be checked against; ``None`` checks every
    partition of a cut. A Pulsar source's cut is in local offsets, which mean nothing
    to another run and are never in ``committed_sources``: its messages are acknowledged
    once the checkpoint committed, so a checkpoint with a marker holds them (checking
    them would discard every such checkpoint, and the broker would not send the
    acknowledged messages again).

    ``shards`` limits the read to those changelog partitions (a shard this instance
    just took over); None reads every one (the start).

    Checkpoints are applied in the order of their markers in each partition, not by id:
    a shard's records are written by one instance at a time, and when the shard moves
    to another instance its writes follow the previous owner's in the log, while the two
    number their checkpoints each on its own.

    ``spill_after``: records held in memory before the tail goes to disk (by default
    :data:`~swimstream.store.held_tail.SPILL_AFTER`; see that module).

    ``stopping`` is asked after each batch read and before each write: rebuilding a big
    store takes minutes, and an orchestrator's SIGTERM (``docker stop`` kills after 10 s)
    must not wait for it. The store's positions move only with the last write, so an
    interrupted recovery leaves the next start reading the same tail again.
    """
    started = time.monotonic()
    report = RecoveryReport()
    known = committed.positions()
    read = range(partitions) if shards is None else sorted(shards)
    start = {p: known[p].changelog_offset if p in known else 0 for p in read}
    report.committed_through = max((p.checkpoint for p in known.values()), default=0)
    report.last_checkpoint = report.committed_through
    local = committed.path.parent if isinstance(committed, SQLiteStore) else None
    tail = HeldTail(spill_after, local)
    pending: dict[tuple[int, int | None], int] = {}  # (partition, checkpoint) -> held group
    # (partition, checkpoint, instance) -> its held groups, in the order the markers were
    # read (each partition's log order): live instances of one app number their
    # checkpoints on their own, so two may use the same id.
    ready: dict[tuple[int, int, str], list[int]] = {}
    cut_of: dict[tuple[int, int, str], Mapping[str, int]] = {}
    lineages: set[tuple[str, int, int]] = set()  # (instance, restored_from, first) seen
    positions: dict[int, ShardPosition] = {}
    first_at: dict[tuple[int, int | None], int] = {}  # (partition, checkpoint): 1st record
    restated: dict[tuple[int, int | None], Marker] = {}  # what its records say of its marker
    restated_lineages: set[tuple[str, int, int]] = set()
    order: dict[tuple[int, int, str], int] = {}  # ready group -> where its marker was
    began: dict[tuple[int, int, str], int] = {}  # ready group -> its first record
    # Where each (checkpoint, instance) was seen closed, and each instance's highest
    # checkpoint seen (a marker or a record): what tells a checkpoint is whole.
    marked: dict[tuple[int, str], set[int]] = {}
    latest: dict[str, int] = {}
    # Skipped groups not known to be cut short: their sources had not committed them
    # when this read began, which may yet happen (another live instance's checkpoint
    # in flight, on a broker that shows records of open transactions, as Tansu does).
    unresolved: list[tuple[int, int, str, int]] = []  # (partition, checkpoint, writer, 1st)

    def on_records(batch: Sequence[InboundRecord]) -> None:
        if stopping():
            read = counted(report.records, "changelog record", grouped=True)
            raise RestoreStopped(f"{read} read")
        for record in batch:
            report.records += 1
            partition = record.partition() or 0
            key = record.key()
            if key is None:
                continue
            marker: Marker | None = None
            try:
                if is_marker_key(key):
                    marker = read_marker(record.value() or b"")
                else:
                    node, name = parse_key(key)
                    group = (partition, checkpoint_of(record.headers()))
                    number = pending.get(group)
                    # (Its first record restates the group's marker: read before
                    # anything of it is kept, so that a record that fails is left out.)
                    writer = None if number is not None else restated_marker(record.headers())
            except _UNREADABLE as exc:
                foreign.saw(record, exc)  # no record of swimstream's: not state
                continue
            if marker is not None:
                _close_group(record, marker, partition)
                continue
            if number is None:
                number = pending[group] = tail.group()
                first_at[group] = record.offset() or 0
                # (A checkpoint cut short before its markers has no marker to say
                # its id: a later one of that id would join its group.)
                report.last_checkpoint = max(report.last_checkpoint, group[1] or 0)
                if writer is not None:
                    restated[group] = writer
                    latest[writer.instance] = max(latest.get(writer.instance, 0), writer.checkpoint)
                    restated_lineages.add((writer.instance, writer.restored_from, writer.first))
            tail.add(number, node, name, record.value(), partition)

    def _close_group(record: InboundRecord, marker: Marker, partition: int) -> None:
        checkpoint = marker.checkpoint
        report.last_checkpoint = max(report.last_checkpoint, checkpoint)
        number = pending.pop((partition, checkpoint), None)
        group = [] if number is None else [number]
        group_start = first_at.pop((partition, checkpoint), None)
        restated.pop((partition, checkpoint), None)
        instance = marker.instance
        marked.setdefault((checkpoint, instance), set()).add(partition)
        latest[instance] = max(latest.get(instance, 0), checkpoint)
        lineage = (instance, marker.restored_from, marker.first)
        if lineage not in lineages:
            lineages.add(lineage)
            for earlier in [c for c in ready if marker.cut_short(c[2], c[1])]:
                _skip(earlier[1], ready.pop(earlier))  # committed past, by a later incarnation
        if _stands(marker, lineages):
            ready.setdefault((partition, checkpoint, instance), []).extend(group)
            cut_of[partition, checkpoint, instance] = marker.sources
            order.setdefault((partition, checkpoint, instance), record.offset() or 0)
            began.setdefault(
                (partition, checkpoint, instance),
                record.offset() or 0 if group_start is None else group_start,
            )
        else:
            _skip(checkpoint, group)
            if group_start is not None:
                unresolved.append((partition, checkpoint, instance, group_start))
        # (What it reflects is named at the end, once every checkpoint is judged.)
        positions[partition] = ShardPosition((record.offset() or 0) + 1, 0, {})

    def _stands(marker: Marker, known: Collection[tuple[str, int, int]]) -> bool:
        """Whether a checkpoint is committed: its cut by the sources, and not cut short
        by a later incarnation of its writer."""
        return _was_committed(marker.sources, committed_sources, checked) and not _cut_short(
            known, marker.instance, marker.checkpoint
        )

    def _skip(checkpoint: int, groups: list[int]) -> None:
        report.skipped_records += tail.size(groups)
        tail.drop(groups)
        if checkpoint not in report.skipped_checkpoints:
            report.skipped_checkpoints.append(checkpoint)

    progress = _Progress(topic)
    foreign = _Foreign(topic)
    ends = await reader.read(topic, start, on_records, progress)
    foreign.summary()
    known_lineages = lineages | restated_lineages
    for (partition, number), pending_group in pending.items():
        group = [pending_group]
        restating = restated.get((partition, number))
        start_at = first_at[partition, number]
        held = positions.get(partition)
        if restating is None or held is None or start_at >= held.changelog_offset:
            # After the partition's last marker: a checkpoint cut short, or still open.
            report.skipped_records += tail.size(group)
            tail.drop(group)
        elif _stands(restating, known_lineages):
            # Before a later marker, without its own: compaction removed it.
            key = (partition, restating.checkpoint, restating.instance)
            ready.setdefault(key, []).extend(group)
            cut_of[key] = restating.sources
            order.setdefault(key, start_at)
            began.setdefault(key, start_at)
            marked.setdefault(key[1:], set()).add(partition)
        else:
            _skip(restating.checkpoint, group)
    # A checkpoint closed in some partitions only: a crash between its markers, or
    # another instance's in flight. Skipped everywhere, and read again next time.
    # (Judged after every lineage is known: a later checkpoint of a later incarnation
    # vouches for none its lineage says were cut short.)
    for key in [k for k in ready if _cut_short(known_lineages, k[2], k[1])]:
        _skip(key[1], ready.pop(key))
    for key in [k for k in ready if not _whole(k[1], k[2], marked, latest, read)]:
        _skip(key[1], ready.pop(key))
        unresolved.append((*key, began[key]))
    last_applied: dict[int, tuple[int, int, str]] = {}
    for key in ready:
        newest = last_applied.get(key[0])
        if newest is None or order[key] > order[newest]:
            last_applied[key[0]] = key
    for partition, held in positions.items():
        # What each partition's position says it reflects: its last checkpoint applied.
        newest = last_applied.get(partition)
        if newest is not None:
            positions[partition] = ShardPosition(
                held.changelog_offset, newest[1], dict(cut_of[newest])
            )
        elif partition in known:
            positions[partition] = ShardPosition(
                held.changelog_offset, known[partition].checkpoint, known[partition].sources
            )
        else:
            positions[partition] = ShardPosition(held.changelog_offset, 0, {})
    # The next read starts again at the first group that may still commit.
    for partition, checkpoint, writer, group_start in unresolved:
        if _cut_short(lineages, writer, checkpoint):
            continue  # cut short: a later incarnation of its instance says so
        held = positions[partition]
        if group_start < held.changelog_offset:
            positions[partition] = ShardPosition(group_start, held.checkpoint, held.sources)
    applied: list[int] = []  # held groups, in the order they are applied
    for key in sorted(ready, key=lambda k: (k[0], order[k])):  # each partition's log order
        partition, checkpoint, _ = key
        applied.extend(ready[key])
        report.committed_through = max(report.committed_through, checkpoint)
        cut = report.cuts.setdefault(partition, {})
        for name, offset in cut_of[key].items():
            cut[name] = max(cut.get(name, 0), offset)
    report.applied_checkpoints = len({(c, i) for _, c, i in ready})
    try:
        await _write(committed, tail, applied, positions, progress, stopping, report)
    finally:
        tail.close()
    report.seconds = time.monotonic() - started
    if shards is not None:
        return report  # a shard taken over at run time: the caller says what it did
    log.info(
        "restored %s: %s read, %s applied, %s of %s skipped, in %.1f s",
        topic,
        counted(report.records, "changelog record", grouped=True),
        counted(report.applied_checkpoints, "checkpoint"),
        counted(report.skipped_records, "record", grouped=True),
        counted(len(report.skipped_checkpoints), "uncommitted checkpoint"),
        report.seconds,
        extra={
            "topic": topic,
            "records": report.records,
            "seconds": round(report.seconds, 3),
            "skipped_checkpoints": report.skipped_checkpoints,
            "committed_through": report.committed_through,
            # Where each partition was read to and the offsets checkpoints were checked
            # against: what a surprising restore is explained by.
            "changelog_read_to": {str(p): o for p, o in sorted(ends.items())},
            "committed_sources": {
                f"{tp.topic}[{tp.partition}]": o for tp, o in sorted(committed_sources.items())
            },
        },
    )
    return report


async def _write(
    committed: CommittedStore,
    tail: HeldTail,
    groups: list[int],
    positions: Mapping[int, ShardPosition],
    progress: _Progress,
    stopping: Callable[[], bool],
    report: RecoveryReport,
) -> None:
    """Write the entries of the applied ``groups`` in key order, then the positions.

    Key order: SQLite then fills its B-tree from one end, 1.7 times faster than the
    changelog's order when a whole store is rebuilt. The positions go with the last
    write: a stop before it leaves the next start reading the same tail again.
    """
    total = tail.size(groups)
    if total > WRITE_BATCH:
        progress.writing(0, total)  # (the sort alone takes a second at a million)
    written = 0
    batches = tail.ordered(groups, WRITE_BATCH)
    batch = next(batches, [])
    while True:
        following = next(batches, None)
        if stopping():
            entries = counted(total, "entry", "entries", grouped=True)
            raise RestoreStopped(f"{written:,} of {entries} written")
        report.changed.update(entry.node_uri for entry in batch)
        await committed.write_async(batch, positions if following is None else {})
        written += len(batch)
        if following is None:
            return
        progress.writing(written, total)
        batch = following


def shards_ahead(
    positions: Mapping[int, ShardPosition],
    committed_sources: Mapping[TopicPartition, int],
    checked: Collection[TopicPartition],
) -> list[int]:
    """The shards whose stored state is of a checkpoint the sources never committed.

    At least once, a checkpoint's offsets are committed asynchronously after its
    flush, and its local write follows: a commit that never landed (a crash, a failed
    commit) leaves the store ahead of the offsets, and the records in between would be
    applied twice. So would offsets reset by hand to reprocess. Recovery cannot take a
    shard back; the caller rebuilds the store from the changelog, whose tail it judges.
    """
    return sorted(
        shard
        for shard, position in positions.items()
        if not _was_committed(position.sources, committed_sources, checked)
    )


class _Foreign:
    """Records in the changelog that swimstream did not write (another producer's, or
    damaged): skipped, since they hold no state of an agent, and said once. A start
    that stopped at one would stop at every start, compaction keeping it for good."""

    SHOWN = 5
    """Records named one by one; past them, only counted."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self.count = 0

    def saw(self, record: InboundRecord, problem: Exception) -> None:
        self.count += 1
        if self.count > self.SHOWN:
            return
        partition, offset = record.partition() or 0, record.offset() or 0
        log.warning(
            "%s[%d] at offset %d: skipped a record swimstream did not write (key %r): %s",
            self._topic,
            partition,
            offset,
            record.key(),
            problem,
            extra={"topic": self._topic, "partition": partition, "offset": offset},
        )

    def summary(self) -> None:
        if self.count > self.SHOWN:
            log.warning(
                "%s: skipped %s swimstream did not write in all",
                self._topic,
                counted(self.count, "record", grouped=True),
                extra={"topic": self._topic, "records": self.count},
            )


def _whole(
    checkpoint: int,
    instance: str,
    marked: Mapping[tuple[int, str], Collection[int]],
    latest: Mapping[str, int],
    read: Collection[int],
) -> bool:
    """Whether a checkpoint was closed in every partition read: its marker read in each,
    or a later checkpoint of its instance read (which the instance began only once this
    one had committed, so once every marker of it was written)."""
    closed_in = marked.get((checkpoint, instance), ())
    # (Only partitions read are marked: counting them is enough.)
    return latest.get(instance, 0) > checkpoint or len(closed_in) >= len(read)


def _cut_short(lineages: Collection[tuple[str, int, int]], instance: str, checkpoint: int) -> bool:
    """Whether a later incarnation of ``instance`` says it crashed before committing
    ``checkpoint`` (its ids run from where it restored from to its first; see
    :mod:`swimstream.store.changelog`)."""
    return any(
        writer == instance and first > checkpoint > restored_from
        for writer, restored_from, first in lineages
    )


def _was_committed(
    cut: Mapping[str, int],
    committed: Mapping[TopicPartition, int],
    checked: Collection[TopicPartition] | None,
) -> bool:
    """Whether the sources committed every offset of a checkpoint's cut (of the
    ``checked`` partitions, when given)."""
    for name, offset in cut.items():
        source = TopicPartition(*parse_cut_key(name))
        if checked is not None and source not in checked:
            continue
        if committed.get(source, 0) < offset:
            return False
    return True
