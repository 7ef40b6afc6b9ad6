"""A shard that routed nothing still moves its stored changelog position.

Checkpoints wrote positions only for the partitions their cut routed from: a quiet
shard's position stayed where the last restore put it, and every restart read its
changelog partition again from there (a marker per checkpoint, every 100 ms, for the
whole uptime). Only this instance's shards may move, though: in another's partition,
records this store never read may lie before its marker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from swimstream.config import parse_config
from swimstream.metrics import MetricsRegistry
from swimstream.service.durability import Durability
from swimstream.service.handover import Handover
from swimstream.store.deferral import DeferringSink
from swimstream.streams.connector import Rebalance, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter
from swimstream.testing import MemorySink, open_plane
from tests.config.documents import document
from tests.store.test_checkpoint_turns import Meter, SlowTransactions
from tests.store.test_recovery import ListReader
from tests.streams.scripted import ScriptedSource
from tests.support.waiting import wait_until

READINGS = [TopicPartition("readings", 0), TopicPartition("readings", 1)]
SHARD = {"/meter/a": 0, "/meter/b": 1}


class PartitionZeroBook:
    """An offset book that routed records of readings/0 only."""

    trackers = dict.fromkeys(READINGS)

    def routed_positions(self) -> dict[TopicPartition, int]:
        return {READINGS[0]: 42}


class RoutedFromPartitionZero:
    """A source runner's face to checkpoints: records routed from readings/0 only."""

    transactional = True
    book = PartitionZeroBook()

    def hold(self) -> None: ...

    def release(self) -> None: ...

    def checkpointed(self, cut: object) -> None: ...

    async def wait_for_records(self) -> None:
        await asyncio.Event().wait()


async def test_a_shard_that_routed_nothing_gets_its_position(tmp_path: Path) -> None:
    """One instance, no consumer group: every shard is its own."""
    config = parse_config(document(store={"path": str(tmp_path)}), {})
    durability = Durability(config, "one", ListReader([], {}), 2, SHARD.__getitem__)
    failures: list[BaseException] = []
    async with open_plane({"/meter/:id": Meter}) as plane:
        await durability.open(READINGS)
        try:
            durability.attach(plane)
            durability.start_checkpoints(
                plane,
                DeferringSink(SlowTransactions()),  # type: ignore[arg-type]  # a stand-in
                [RoutedFromPartitionZero()],  # type: ignore[list-item]  # its checkpoint face
                True,
                None,
                failures.append,
            )
            for n in range(3):  # state changes in both shards (a command, a timer)
                await plane.command("/meter/a", "read", n)
                await plane.command("/meter/b", "read", n)
                await plane.settle()
                assert durability.checkpointer is not None
                await durability.checkpointer.checkpoint()
            await durability.finish()
            positions = durability.committed.positions()
        finally:
            durability.close()
    assert not failures
    assert sorted(positions) == [0, 1], positions
    assert positions[1].checkpoint == positions[0].checkpoint
    assert positions[1].changelog_offset > 0


async def test_with_a_consumer_group_only_shards_held_and_restored_are_owned(
    tmp_path: Path,
) -> None:
    config = parse_config(document(store={"path": str(tmp_path)}), {})
    durability = Durability(config, "one", ListReader([], {}), 2, SHARD.__getitem__)
    failures: list[BaseException] = []
    async with open_plane({"/meter/:id": Meter}) as plane:
        await durability.open(READINGS)
        handover = Handover(durability, plane, ["readings"], failures.append)
        try:
            durability.attach(plane, arm_stored=False)
            registry = MetricsRegistry()
            dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]  # produces only
            source = ScriptedSource({}, waits=1)
            source.held = {READINGS[0]}
            runner = SourceRunner("test", source, RecordRouter(plane, [], dead, registry), registry)  # type: ignore[arg-type]
            handover.follow(runner)
            assert handover.settled() == {0}  # shard 1: another instance's

            source.held = set(READINGS)  # gained: owned once its restore ends
            assert runner.on_moved is not None
            runner.on_moved(Rebalance(assigned=(READINGS[1],), incremental=True))
            assert handover.settled() == {0}
            await wait_until(lambda: not handover.restoring(), 10, "the restore to end")
            assert handover.settled() == {0, 1}

            durability.tracker.hold({1})  # revoked: its changes are no longer stored
            assert handover.settled() == {0}
        finally:
            await handover.close()
            durability.close()
    assert not failures
