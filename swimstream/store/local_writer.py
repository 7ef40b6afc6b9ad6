"""Writing committed checkpoints to the local store, behind the broker and off the loop.

The local store may only hold committed checkpoints, in order, and must not fall
behind a fast stream: every SQLite transaction rewrites each B-tree page its keys fall
on, so a million agents changing in random order cost a page per row in small
transactions. Checkpoints that commit while a write is running therefore wait and go
in together as the next write, one transaction however many they are: the batches grow
exactly as much as the store needs to keep up.

Writes also start at most every ``spacing`` seconds (1 s), whatever the commit interval:
a name changed in every checkpoint is written once a second rather than ten times, and
the writer's thread takes the interpreter from the agents less often. The local store
only makes restarts fast; lagging a second behind the changelog costs a restart one
second more of changelog tail to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from swimstream.store.changelog import ChangelogRow
from swimstream.store.durable import DurableAgentStore
from swimstream.store.sqlite import ShardPosition

log = logging.getLogger("swimstream.store")

Pending = tuple[Sequence[ChangelogRow], dict[int, ShardPosition], int]


class LocalWriter:
    """Queues committed checkpoints for the local store and writes them in batches."""

    def __init__(self, store: DurableAgentStore, spacing: float = 1.0) -> None:
        self._store = store
        self._spacing = spacing
        self._pending: list[Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()
        self.writes = 0
        """SQLite transactions so far (fewer than checkpoints when they were batched)."""
        self.checkpoints = 0

    @property
    def failure(self) -> BaseException | None:
        """Why the last write failed (then nothing more is written)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    def submit(
        self, entries: Sequence[ChangelogRow], positions: dict[int, ShardPosition], generation: int
    ) -> None:
        """Queue one committed checkpoint (``generation``: the passivations it covers)."""
        self._pending.append((entries, positions, generation))
        if self.failure is None and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name="swimstream-local-write"
            )

    async def drained(self) -> None:
        """Wait until everything submitted is written; raises the write's failure."""
        self._hurry.set()
        if self._task is not None:
            await self._task

    async def close(self) -> None:
        """Wait for the write under way, whatever its outcome."""
        self._hurry.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    @staticmethod
    def _not_behind(
        entries: Sequence[ChangelogRow],
        positions: Mapping[int, ShardPosition],
        known: Mapping[int, ShardPosition],
    ) -> tuple[Sequence[ChangelogRow], Mapping[int, ShardPosition]]:
        """Leave out the shards the store holds a later state of (``known``: the stored
        positions as the write begins).

        A shard that left while its checkpoint waited here, and came back, was restored
        meanwhile from the changelog, which holds the other owner's later writes:
        writing the wait's older state over them would take the shard back in time. The
        store judges it as the write begins, in its own thread, after every write queued
        before: judged here, on the loop, a restore's write still queued was not seen,
        and landed first."""
        behind = {
            shard
            for shard, position in positions.items()
            if shard in known and known[shard].changelog_offset > position.changelog_offset
        }
        if not behind:
            return entries, positions
        log.debug("left out of a local write: shards %s, restored since", sorted(behind))
        kept = [entry for entry in entries if entry[3] not in behind]  # (its shard)
        return kept, {p: position for p, position in positions.items() if p not in behind}

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while self._pending:
            batch, self._pending = self._pending, []
            entries = batch[0][0] if len(batch) == 1 else [e for b in batch for e in b[0]]
            positions: dict[int, ShardPosition] = {}
            for _, later, _ in batch:
                positions.update(later)
            try:
                await self._store.committed.write_async(entries, positions, self._not_behind)
            except BaseException as exc:
                log.error("writing checkpoints to the local store failed: %s", exc)
                raise
            self._store.written(batch[-1][2])
            self.writes += 1
            self.checkpoints += len(batch)
            pause = started + self._spacing - loop.time()
            if pause > 0 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), pause)
            started = loop.time()
