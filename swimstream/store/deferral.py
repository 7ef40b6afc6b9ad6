"""Holding back what is produced while a transaction commits.

A Kafka producer has one transaction at a time. During the few milliseconds that a
checkpoint's transaction takes to commit, the agents go on working, and the insights
they publish belong to the *next* checkpoint: they wait here, in order, and enter the
next transaction as soon as it begins. So the instance never stops for the commit's
round trip, only for the cut itself.

Everything produced through it is in a transaction, so its delivery is vouched for by
the commit: records go without delivery reports (about a microsecond each on the loop
thread), and a caller's delivery callback is told of success at once. Only a
checkpoint's markers keep their report, which says where they were written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from swimstream.streams.connector import DeliveryCallback, TransactionalSink


class DeferringSink:
    """A sink in front of a transactional one that can hold records back."""

    def __init__(self, inner: TransactionalSink) -> None:
        self.inner = inner
        self._held: list[tuple[Any, ...]] | None = None
        self.produced = 0
        """Calls that produced records so far (a checkpoint with none since the last
        one has no transaction to commit)."""

    def hold(self) -> None:
        """From now on, keep produced records until :meth:`release`."""
        if self._held is None:
            self._held = []

    def release(self) -> int:
        """Produce what was held (into the transaction now open); returns how many."""
        held, self._held = self._held, None
        for record in held or ():
            self._send(*record)
        return len(held or ())

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        on_delivery: DeliveryCallback | None = None,
        *,
        partition: int | None = None,
        on_written: Callable[[int, int], None] | None = None,
    ) -> None:
        vouched = None
        if on_written is None and on_delivery is not None:
            # In the open transaction, whose commit vouches for it (a record that fails
            # fails the commit, and the instance stops): no delivery report to wait for,
            # and the record's effect is done as far as the caller is concerned, once it
            # is in (a record the client refuses raises, and its caller handles that).
            vouched, on_delivery = on_delivery, None
        record = (topic, key, value, headers, on_delivery, partition, on_written)
        self.produced += 1
        if self._held is None:
            self._send(*record)
        else:
            self._held.append(record)
        if vouched is not None:
            vouched(None)

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
        on_delivery: DeliveryCallback | None,
        partition: int | None,
        on_written: Callable[[int, int], None] | None,
    ) -> None:
        if on_written is None:  # unreported: see produce
            where = -1 if partition is None else partition
            self.inner.produce_many(topic, ((key, value, where),), headers or (), reported=False)
        else:  # a checkpoint's marker: where it was written matters
            self.inner.produce(
                topic, key, value, headers, on_delivery, partition=partition, on_written=on_written
            )

    def produce_many(
        self,
        topic: str,
        records: Iterable[tuple[bytes | None, bytes | None, int]],
        headers: Sequence[tuple[str, bytes]],
        *,
        reported: bool = True,
    ) -> None:
        self.produced += 1
        if self._held is None:
            self.inner.produce_many(topic, records, headers, reported=reported)
        else:
            for key, value, partition in records:
                self.produce(topic, key, value, headers, partition=partition)

    @property
    def undelivered(self) -> int:
        return self.inner.undelivered

    async def open(self) -> None:
        await self.inner.open()

    def poll(self) -> None:
        self.inner.poll()

    async def wait_for_pending(self) -> None:
        await self.inner.wait_for_pending()

    async def flush(self, timeout: float) -> bool:
        return await self.inner.flush(timeout)

    def mark(self) -> object:
        return self.inner.mark()

    async def flush_to(self, mark: object, timeout: float) -> bool:
        return await self.inner.flush_to(mark, timeout)

    @property
    def pending(self) -> int:
        return self.inner.pending + len(self._held or ())

    async def close(self, timeout: float | None = None) -> None:
        self._held = None  # they belong to a checkpoint that never committed
        await self.inner.close(timeout)
