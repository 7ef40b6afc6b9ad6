"""A partition that comes back after it left: what its records find when delivered again.

The source runner skips records its agents in memory hold already (an eager rebalance
handing the same partitions back). A partition that left (moved, or lost with the
session) has no such agents any more: restored from the changelog, they hold what the
last committed cut holds, and every record after it must be routed again.

A real runner and a real hand-over, over a scripted source; the changelog holds nothing
newer than the store (the restore reads an empty tail), so the restored state is the
last committed one, at offset 0 here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from swimstream.metrics import MetricsRegistry
from swimstream.service.handover import Handover
from swimstream.store.committed import MemoryCommitted
from swimstream.streams.connector import InboundRecord, Rebalance, TopicPartition
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.tracking import PartitionTracker, RecordAck
from swimstream.testing import MemoryRecord
from tests.streams.scripted import ScriptedSource

PARTITION = TopicPartition("readings", 0)


class Router:
    """Routes by noting the offset; each record's effect completes at once."""

    def __init__(self) -> None:
        self.routed: list[int] = []

    def route(self, record: InboundRecord, tracker: PartitionTracker) -> None:
        offset = record.offset() or 0
        self.routed.append(offset)
        RecordAck(tracker, record, offset, None)(None)  # type: ignore[arg-type]


class EmptyChangelog:
    """A changelog with nothing past what the store reflects."""

    async def read(
        self,
        topic: str,
        start: Mapping[int, int],
        on_records: Callable[[Sequence[InboundRecord]], None],
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[int, int]:
        return dict(start)

    async def committed_offsets(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return {}


class Forgetting:
    """The plane's and tracker's side of a shard leaving: counts what was forgotten."""

    def __init__(self) -> None:
        self.forgotten = 0

    def forget_agents(self, select: Callable[[str], bool]) -> int:
        self.forgotten += 1
        return 0

    def hold(self, shards: object) -> None: ...

    def release(self, shards: object) -> None: ...

    def forget(self, select: object) -> None: ...


def durability(forgetting: Forgetting) -> Any:
    """What the hand-over reads of the service's durable state: checkpoints not started
    (changes at rest run at once), one shard, an empty changelog tail."""
    return SimpleNamespace(
        tracker=forgetting,
        checkpointer=None,
        shards=1,
        topic="app.changelog",
        config=SimpleNamespace(consumer_group="app"),
        committed=MemoryCommitted(),
        reader=EmptyChangelog(),
        shard_of=lambda _node: 0,
        arm=lambda _plane, _select: None,
        store=forgetting,
    )


def records(offsets: range) -> list[MemoryRecord]:
    return [MemoryRecord("readings", 0, offset, b"k", b"{}") for offset in offsets]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def handed_over() -> AsyncIterator[tuple[ScriptedSource, Router, SourceRunner, Forgetting]]:
    """A runner of the scripted source, whose shards a hand-over follows, running."""
    forgetting = Forgetting()
    source = ScriptedSource({}, waits=10**9)
    router = Router()
    runner = SourceRunner("readings", source, router, MetricsRegistry(), managed_commits=True)  # type: ignore[arg-type]
    handover = Handover(durability(forgetting), forgetting, ["readings"], pytest.fail)  # type: ignore[arg-type]
    handover.follow(runner)
    running = asyncio.create_task(runner.run())
    try:
        await settle()
        yield source, router, runner, forgetting
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


def rebalance(source: ScriptedSource, change: Rebalance) -> None:
    """Play ``change`` as the connector would (its assignment follows)."""
    assert source.listener is not None
    source.held = set(change.assigned) if change.assigned or not change.revoked else set()
    source.listener(change)


def deliver(source: ScriptedSource, offsets: range) -> None:
    """The records at ``offsets`` arrive during the runner's next wait."""
    source.arrivals[len(source.timeouts) + 1] = records(offsets)


@pytest.mark.parametrize("incremental", [False, True], ids=["eager", "cooperative"])
@pytest.mark.parametrize("handed_back", ["at-once", "after-an-empty-assignment"])
async def test_a_lost_partition_handed_back_is_restored_and_its_records_all_routed_again(
    incremental: bool, handed_back: str
) -> None:
    """Its agents held offsets 0 to 9, none committed. Lost with the session, the
    partition may have been another member's meanwhile: its agents must go and the
    shard be restored. Before, the eager hand-back kept the stale agents, and a later
    assignment skipped 0 to 9 (as applied already) over agents that never had them."""
    async with handed_over() as (source, router, runner, forgetting):
        rebalance(source, Rebalance(assigned=(PARTITION,), incremental=incremental))
        await settle()
        deliver(source, range(10))
        await settle()
        assert router.routed == list(range(10))

        rebalance(source, Rebalance(revoked=(PARTITION,), lost=True, incremental=incremental))
        if handed_back == "after-an-empty-assignment":
            rebalance(source, Rebalance(incremental=incremental))
            await settle()
        rebalance(source, Rebalance(assigned=(PARTITION,), incremental=incremental))
        await settle()
        assert forgetting.forgotten >= 1  # its agents left memory
        assert PARTITION not in runner.restoring  # restored (from the empty tail)

        router.routed.clear()
        deliver(source, range(15))  # from the last commit
        await settle()
        assert router.routed == list(range(15))


async def test_a_partition_an_eager_rebalance_revokes_and_hands_back_skips_what_it_holds() -> None:
    """The other side of the rule: revoked cleanly (nobody else had it) and handed back,
    its agents stay, and the records they hold are skipped as the group delivers them
    again from the last commit."""
    async with handed_over() as (source, router, _, forgetting):
        rebalance(source, Rebalance(assigned=(PARTITION,)))
        await settle()
        deliver(source, range(10))
        await settle()
        rebalance(source, Rebalance(revoked=(PARTITION,)))
        rebalance(source, Rebalance(assigned=(PARTITION,)))
        await settle()
        router.routed.clear()
        deliver(source, range(15))
        await settle()
        assert router.routed == list(range(10, 15))
        assert forgetting.forgotten == 0
