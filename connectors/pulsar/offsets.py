"""Local offsets for Pulsar messages, and the message ids each offset stands for.

The service tracks completion per partition with increasing integer offsets and commits
"everything below n". Pulsar has message ids instead, and with a Key_Shared subscription
they do not even increase: a message redelivered after another consumer left comes
after newer ones. So the source numbers messages itself, per partition, in the order it
hands them out, and remembers which message id each number stands for until the number
is committed; committing then means acknowledging those ids one by one (Key_Shared
refuses cumulative acknowledgement).

The numbers are local to one source object: they start at 0 on every ``open`` and a
message delivered again after its number was committed (a whole batch comes back when
only part of it was acknowledged) gets a new number. They are good for completion
tracking inside one run and mean nothing across runs; :meth:`PulsarRecord.message_id`
is the stable identity.

**A message delivered again while it is still held is handed out once.** Pulsar
redelivers what is unacknowledged when a consumer reconnects (or its ack timeout
passes, or on ``redeliver_unacknowledged_messages``), including messages the service is
still processing, and pulsar-lite has sent a fresh batch twice (see
:mod:`connectors.pulsar`). Handing such a repeat out would apply the same event twice
(a counter counts it twice) although nothing was lost; instead it is dropped, and the
acknowledgement of the first delivery, once its offset is committed, covers both.

Memory: one entry per handed-out, uncommitted message, which the service bounds with
its in-flight limits (the same records it must hold to process them anyway).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from swimstream.streams.connector import TopicPartition

IdT = TypeVar("IdT")


class OffsetLedger(Generic[IdT]):
    """Numbers messages per partition and releases their ids when offsets are committed.

    ``identity`` turns a message id into something hashable that is equal for two
    deliveries of one message (pulsar-client's ids are not hashable).
    """

    def __init__(self, identity: Callable[[IdT], Hashable] = lambda message_id: message_id) -> None:
        self._identity = identity
        self._next: dict[TopicPartition, int] = {}
        self._held: dict[
            TopicPartition, deque[tuple[int, IdT, tuple[TopicPartition, Hashable]]]
        ] = {}
        self._holding: set[tuple[TopicPartition, Hashable]] = set()
        self.repeats = 0
        """Deliveries dropped as repeats of a message still held."""

    def assign(
        self, partition: TopicPartition, message_id: IdT, identity: Hashable | None = None
    ) -> int | None:
        """The next offset of ``partition``, now standing for ``message_id`` (whose
        ``identity`` the caller may have at hand); None when that message is held
        already (delivered again before its offset was committed: see the module
        docstring), so the caller drops this delivery."""
        if identity is None:
            identity = self._identity(message_id)
        held_as = (partition, identity)
        if held_as in self._holding:
            self.repeats += 1
            return None
        self._holding.add(held_as)
        offset = self._next.get(partition, 0)
        self._next[partition] = offset + 1
        held = self._held.get(partition)
        if held is None:
            held = self._held[partition] = deque()
        held.append((offset, message_id, held_as))
        return offset

    def release(self, partition: TopicPartition, below: int) -> list[IdT]:
        """Forget, and return, the ids of every held offset of ``partition`` below
        ``below``, oldest first."""
        return [message_id for message_id, _ in self.release_identified(partition, below)]

    def release_identified(
        self, partition: TopicPartition, below: int
    ) -> list[tuple[IdT, Hashable]]:
        """:meth:`release`, each id with its identity."""
        held = self._held.get(partition)
        released: list[tuple[IdT, Hashable]] = []
        while held and held[0][0] < below:
            _, message_id, held_as = held.popleft()
            self._holding.discard(held_as)
            released.append((message_id, held_as[1]))
        return released

    def next_offset(self, partition: TopicPartition) -> int:
        """The offset the next message of ``partition`` will get."""
        return self._next.get(partition, 0)

    def held(self, partition: TopicPartition) -> int:
        """How many offsets of ``partition`` wait for a commit."""
        return len(self._held.get(partition, ()))
