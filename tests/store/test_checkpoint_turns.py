"""Checkpoints take turns: a periodic one and a revoke's never commit at once.

Under exactly-once each checkpoint commits its own transaction, and a producer has one
transaction at a time; a revoke's checkpoint (``commit_now``) that cut while a periodic
one was still cutting used to start its commit beside the other's. The sink here is a
stand-in for the transactional producer that notes what the checkpointer asks of it, in
order, and whether a commit began while another ran (the broker-backed tests cannot
make the two meet on purpose).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping

from swimstream import Agent, CommandLane, ValueLane
from swimstream.runtime import Plane
from swimstream.store.checkpoint import Checkpointer
from swimstream.store.committed import MemoryCommitted
from swimstream.store.deferral import DeferringSink
from swimstream.store.durable import DurableAgentStore
from swimstream.store.tracker import StateTracker
from swimstream.streams.connector import TopicPartition
from swimstream.testing import open_plane

COMMIT_SECONDS = 0.05


class Meter(Agent):
    level = ValueLane[int](default=0)
    read = CommandLane[int]()

    @read.on_command
    def on_read(self, value: int) -> None:
        self.level.set(value)


class Slow(Agent):
    """Keeps the plane from settling until the test lets its callback end."""

    work = CommandLane[None]()
    done: asyncio.Event  # (made by the test, in its loop)

    @work.on_command
    async def on_work(self, _: None) -> None:
        await Slow.done.wait()


class SlowTransactions:
    """A transactional sink whose commits take a while; notes any overlap."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.committing = False
        self.overlaps = 0
        self.undelivered = 0
        self._offset = 0

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_metadata: object, timeout: float = 10.0
    ) -> None:
        self.calls.append("offsets")

    async def commit_transaction(self, timeout: float = 10.0) -> None:
        if self.committing:
            self.overlaps += 1
        self.committing = True
        self.calls.append("commit")
        await asyncio.sleep(COMMIT_SECONDS)
        self.committing = False

    async def abort_transaction(self, timeout: float = 10.0) -> None:
        self.calls.append("abort")

    def produce(
        self,
        *_record: object,
        partition: int | None = None,
        on_written: Callable[[int, int], None] | None = None,
        **_options: object,
    ) -> None:
        if on_written is not None:  # a checkpoint's marker
            on_written(partition or 0, self._offset)
        self._offset += 1

    def produce_many(
        self, _topic: str, records: Iterable[object], *_rest: object, **_: object
    ) -> None:
        self._offset += len(list(records))


def exactly_once_checkpointer(
    plane: Plane,
    sink: SlowTransactions,
    *,
    partitions: int = 1,
    shard_of: Callable[[str], int] = lambda _node: 0,
    instance: str = "",
) -> Checkpointer:
    """A checkpointer of ``plane``'s state into ``sink``, with no sources, checkpointing
    when asked (its interval is ten minutes)."""
    store = DurableAgentStore(MemoryCommitted())
    tracker = StateTracker(store, shard_of)
    tracker.attach(plane)
    return Checkpointer(
        plane=plane,
        tracker=tracker,
        store=store,
        sink=DeferringSink(sink),  # type: ignore[arg-type]  # the stand-in above
        changelog_topic="app.changelog",
        partitions=partitions,
        runners=[],
        exactly_once=True,
        interval=600.0,
        group_metadata=None,
        instance=instance,
    )


async def test_a_periodic_and_a_revoke_checkpoint_commit_one_after_the_other() -> None:
    Slow.done = asyncio.Event()
    async with open_plane({"/meter/:id": Meter, "/slow/:id": Slow}) as plane:
        sink = SlowTransactions()
        checkpointer = exactly_once_checkpointer(plane, sink)
        checkpointer.start()
        await plane.command("/meter/a", "read", 1)
        await plane.settle()
        await checkpointer.checkpoint()  # committing now
        await plane.command("/meter/a", "read", 2)  # new state for the next two to cut
        await plane.settle()
        # A revoke asks for its checkpoint, then the periodic one comes due: both wait
        # for the commit running; as it ends, an agent still busy holds their cuts
        # back (a cut waits for the plane to settle), so both are ready to cut at once.
        plane.submit("/slow/s", "work", None)
        revoke = asyncio.create_task(checkpointer.commit_now())
        await asyncio.sleep(0)
        periodic = asyncio.create_task(checkpointer.checkpoint())
        await asyncio.sleep(2 * COMMIT_SECONDS)  # the first commit ends meanwhile
        Slow.done.set()
        await asyncio.gather(revoke, periodic)
        await checkpointer.finish()
        await checkpointer.close()
        assert sink.overlaps == 0, sink.calls
        assert sink.calls[:5] == ["begin", "commit", "begin", "commit", "begin"], sink.calls
        assert checkpointer.failure is None
