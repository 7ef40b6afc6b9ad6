"""A source connector for runner tests: scripted arrivals, waits that take no time."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from swimstream.streams.connector import (
    InboundRecord,
    RebalanceListener,
    RevokeHook,
    TopicPartition,
)
from swimstream.testing import MemoryRecord

PARTITION = TopicPartition("readings", 0)


class ScriptedSource:
    """A connector whose waits return at once (no time passes) and note their timeout;
    ``arrivals`` maps a wait's number to the records that arrive during it."""

    reports_watermarks = False
    connected = True

    def __init__(self, arrivals: Mapping[int, list[MemoryRecord]], waits: int) -> None:
        self.arrivals = dict(arrivals)
        self.timeouts: list[float] = []
        self.done = asyncio.Event()
        self._limit = waits
        self._ready: list[MemoryRecord] = []
        self.listener: RebalanceListener | None = None
        """What the runner gave to hear of rebalances (call it to play one)."""
        self.before_revoke: RevokeHook | None = None
        """What the runner gave to await before a revoke (await it to play one)."""
        self.kept: list[float] = []
        """The timeout of every ``keep_membership`` call."""
        self.held = {PARTITION}
        """What ``assignment`` answers (a test plays a rebalance by changing it)."""
        self.flow: list[tuple[str, list[TopicPartition]]] = []
        """Every pause and resume, in order: ("pause" or "resume", partitions)."""
        self.commits: list[dict[TopicPartition, int]] = []
        """Every commit asked for, in order (each may fail at the broker)."""

    def consume(self, max_records: int) -> Sequence[InboundRecord]:
        batch, self._ready = self._ready[:max_records], self._ready[max_records:]
        return batch  # (MemoryRecord is an InboundRecord)

    async def wait_for_records(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        self._ready += self.arrivals.pop(len(self.timeouts), [])
        if len(self.timeouts) >= self._limit:
            self.done.set()
            await asyncio.Event().wait()  # until the test cancels the runner
        await asyncio.sleep(0)  # the agents run meanwhile

    async def keep_membership(self, timeout: float) -> None:
        self.kept.append(timeout)
        await asyncio.sleep(timeout)  # (the runner calls it again at once: no spinning)

    def set_rebalance_listener(
        self, listener: RebalanceListener, before_revoke: RevokeHook | None = None
    ) -> None:
        self.listener = listener
        self.before_revoke = before_revoke

    def assignment(self) -> set[TopicPartition]:
        return set(self.held)

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        self.flow.append(("pause", sorted(partitions)))

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        self.flow.append(("resume", sorted(partitions)))

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return {}

    def positions(self) -> dict[TopicPartition, int]:
        return {}

    async def close(self, timeout: float | None = None) -> None:
        pass
