"""A source connector over records held in memory, for the benches' source loop.

The pipeline and instructions benches run the service's own source loop
(:class:`~swimstream.streams.ingest.SourceRunner`) over this connector, so that what they
measure is the path a fetched batch takes in the service (the loop's per-batch and
per-record work, the router, commits), not a loop of the bench's own that could do less.
It hands out batches as the Kafka connector's ``consume`` does, from records that are
``confluent_kafka.Message`` objects like the ones librdkafka makes, and stops handing
them at a mark the bench moves (:meth:`MemorySource.serve`): the runner then waits in
:meth:`MemorySource.wait_for_records` until the bench serves more, and the bench knows
the runner routed every record served (:attr:`MemorySource.dry`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from swimstream.streams.connector import (
    InboundRecord,
    RebalanceListener,
    RevokeHook,
    TopicPartition,
)


class MemorySource:
    """Serves ``records`` in batches up to a mark; ``before_batch`` runs at every
    ``consume`` (the bench's chores between batches: the sinks' delivery reports)."""

    reports_watermarks = False
    connected = True

    def __init__(
        self,
        records: Sequence[InboundRecord],
        partitions: set[TopicPartition],
        before_batch: Callable[[], None],
    ) -> None:
        self._records = records
        self._partitions = partitions
        self._before_batch = before_batch
        self._next = 0
        self._until = 0
        self._more = asyncio.Event()
        self.dry = asyncio.Event()
        """Set once every record served so far was taken and the runner waits for more."""
        self.commits = 0

    async def open(self) -> None:
        pass

    def serve(self, until: int) -> None:
        """Hand out the records up to index ``until``."""
        self._until = until
        self.dry.clear()
        self._more.set()

    def consume(self, max_records: int) -> Sequence[InboundRecord]:
        self._before_batch()
        first = self._next
        self._next = last = min(first + max_records, self._until)
        return self._records[first:last]

    async def wait_for_records(self, timeout: float) -> None:
        if self._next >= self._until:
            self._more.clear()
            self.dry.set()
            await self._more.wait()

    async def keep_membership(self, timeout: float) -> None:
        await asyncio.sleep(timeout)

    def set_rebalance_listener(
        self, listener: RebalanceListener, before_revoke: RevokeHook | None = None
    ) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return set(self._partitions)

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        pass  # (the runner holds the records of a partition it paused itself)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        pass

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.commits += 1

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return {}

    def positions(self) -> dict[TopicPartition, int]:
        return {}

    async def close(self, timeout: float | None = None) -> None:
        pass
