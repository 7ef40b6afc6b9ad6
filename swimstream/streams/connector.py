"""The contract between the service and the broker connectors.

The service (routing, offset tracking, checkpoints, sinks) is written against these
protocols only; ``connectors/kafka`` and ``connectors/pulsar`` implement them, and
translate their client libraries' errors into :class:`~swimstream.errors.BrokerError`
at this boundary.

A record is anything shaped like ``confluent_kafka.Message`` (the same method names), so
the Kafka path hands librdkafka's message objects through without copying; the Pulsar
connector wraps its messages to the same shape.

Threading: every method is called from the event loop's thread and must not block it
for long; ``consume`` returns what the client library has already fetched. Blocking
waits happen in :meth:`SourceConnector.wait_for_records` and the async methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class TopicPartition(NamedTuple):
    """One partition of one topic (a Pulsar topic's partition, too)."""

    topic: str
    partition: int


class InboundRecord(Protocol):
    """A consumed record; confluent_kafka.Message satisfies this as it is."""

    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...

    def headers(self) -> list[tuple[str, bytes]] | None: ...

    def error(self) -> object | None:
        """Not None for a consumer event that is not a record (a connector hands the
        service records only: see :meth:`SourceConnector.consume`)."""
        ...


DeliveryCallback = Callable[[BaseException | None], None]
"""Called once a produced record is durable at the broker (None) or has failed."""


@dataclass(frozen=True, slots=True)
class Rebalance:
    """Partitions this member just gained or lost (cooperative: only the moved ones)."""

    assigned: tuple[TopicPartition, ...] = ()
    revoked: tuple[TopicPartition, ...] = ()
    lost: bool = False
    """True when the partitions were taken without a clean revoke (session expired):
    their offsets must not be committed."""
    incremental: bool = False
    """True under a cooperative protocol: only partitions that move are revoked, and no
    assignment need follow. Otherwise (eager) every revoke is followed by the member's
    whole new assignment, told even when it is empty, which may hand the same
    partitions back."""


RebalanceListener = Callable[[Rebalance], Mapping[TopicPartition, int]]
"""Told of every assignment change; returns the final offsets of revoked partitions."""

RevokeHook = Callable[[tuple[TopicPartition, ...]], Awaitable[None]]
"""Awaited on the loop before partitions are revoked (not lost), while this member
still holds them: what it commits there, the next owner starts from."""


class SourceConnector(Protocol):
    """Consumes the app's source topics as one member of its consumer group.

    Offsets are never committed automatically: the service commits, through
    :meth:`commit`, only offsets whose records' effects are complete.
    """

    reports_watermarks: bool
    """Whether :meth:`high_watermarks` comes to know every assigned partition's end
    (Kafka: from the first fetch). Where it does, a partition without one yet counts as
    not caught up; where it never does (Pulsar), an empty fetch does."""

    async def open(self) -> None:
        """Connect and subscribe. Raises BrokerError naming the problem (a source topic
        that does not exist and is not to be created, an unreachable broker)."""
        ...

    def consume(self, max_records: int) -> Sequence[InboundRecord]:
        """What is already fetched, up to ``max_records``, without waiting: records
        only, each partition's in offset order. The client's events (librdkafka's
        errors, ends of partitions) are the connector's to handle as it fetches, so
        that the service looks at no record for them."""
        ...

    async def wait_for_records(self, timeout: float) -> None:
        """Return when records may be available, or after ``timeout`` seconds."""
        ...

    async def keep_membership(self, timeout: float) -> None:
        """Stay a live member of the group for up to ``timeout`` seconds while the
        runner takes no records (its partitions paused for backpressure): serve
        rebalances, and whatever proof of life the client owes the group. Records that
        arrive meanwhile are buffered for :meth:`consume`."""
        ...

    def set_rebalance_listener(
        self, listener: RebalanceListener, before_revoke: RevokeHook | None = None
    ) -> None:
        """Call ``listener`` on every assignment change, on the loop's thread, before
        partitions are released; the offsets it returns (next offset to read, per
        revoked partition) are committed first, synchronously.

        ``before_revoke(partitions)``, when given, is awaited before the listener hears
        of a clean revoke (not of a loss), while the partitions are still held and none
        of their records is delivered any more, for a bounded time; a source without
        revokes (Pulsar's) never calls it."""
        ...

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member holds now."""
        ...

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        """Stop fetching these partitions (backpressure); records already fetched stay."""
        ...

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        """Fetch these partitions again."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offset to read for each partition (asynchronously is fine)."""
        ...

    def high_watermarks(self) -> dict[TopicPartition, int]:
        """The latest high watermark per assigned partition, as reported by fetches
        (never from ListOffsets: see ``connectors/embedded/kafka.py`` on Tansu), for lag
        and readiness."""
        ...

    def positions(self) -> dict[TopicPartition, int]:
        """The next offset this member will read per assigned partition, if known."""
        ...

    @property
    def connected(self) -> bool:
        """False while the broker is unreachable (readiness reports it)."""
        ...

    async def close(self, timeout: float | None = None) -> None:
        """Leave the group and release the client, waiting for the broker for up to
        ``timeout`` seconds (``None``: the connector's own bound). A broker that does not
        answer by then is left behind: the service's drain passes what is left of its
        deadline, and offsets not committed by then are read again after a restart."""
        ...


class SinkConnector(Protocol):
    """Produces records: insights, dead letters (and, later, changelog records).

    Idempotent and ``acks=all`` on Kafka, so a record acknowledged through
    ``on_delivery(None)`` is durable and was written once.
    """

    async def open(self) -> None:
        """Connect. Raises BrokerError naming the problem."""
        ...

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        on_delivery: DeliveryCallback | None = None,
        *,
        partition: int | None = None,
    ) -> None:
        """Queue one record, to ``partition`` when given (else by key). When the
        client's queue is full this serves delivery reports until there is room rather
        than raising."""
        ...

    def poll(self) -> None:
        """Serve pending delivery callbacks, without waiting."""
        ...

    async def wait_for_pending(self) -> None:
        """Return once a record waits for a delivery report that :meth:`poll` serves (at
        once if one does): an idle service sleeps here rather than polling. A sink
        whose reports need no polling may never return."""
        ...

    async def flush(self, timeout: float) -> bool:
        """Wait until every queued record is delivered (True) or ``timeout`` passed."""
        ...

    @property
    def pending(self) -> int:
        """Records queued but not yet acknowledged."""
        ...

    async def close(self, timeout: float | None = None) -> None:
        """Flush what can be flushed and release the client, within ``timeout`` seconds
        (``None``: the connector's own bound). Records not acknowledged by then are
        reported failed through their ``on_delivery``."""
        ...


class ChangelogSink(SinkConnector, Protocol):
    """A sink that can say where each record was written (the changelog's needs)."""

    undelivered: int
    """Records the broker refused for good, so far (changelog records, insights and
    dead letters alike)."""

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
        """As SinkConnector.produce; ``on_written(partition, offset)`` once written."""
        ...

    def produce_many(
        self,
        topic: str,
        records: Iterable[tuple[bytes | None, bytes | None, int]],
        headers: Sequence[tuple[str, bytes]],
        *,
        reported: bool = True,
    ) -> None:
        """Queue ``(key, value, partition)`` records that share ``headers``, as
        :meth:`produce` would one by one (a checkpoint's entries: one call, not one per
        record). ``reported=False``: no delivery report and not counted in
        :attr:`pending`, for records whose transaction's commit vouches for them."""
        ...

    def mark(self) -> object:
        """A mark after every record produced so far (a checkpoint's cut)."""
        ...

    async def flush_to(self, mark: object, timeout: float) -> bool:
        """Serve delivery reports until every record produced before ``mark`` is
        reported (True), or ``timeout`` passed; records produced since do not count."""
        ...


class TransactionalSink(ChangelogSink, Protocol):
    """A sink whose records, with a source's offsets, commit atomically (Kafka EOS)."""

    def begin_transaction(self) -> None:
        """Start a transaction: every record produced until commit or abort is in it."""
        ...

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_metadata: object, timeout: float = 10.0
    ) -> None:
        """Make committing the source's ``offsets`` part of the transaction."""
        ...

    async def commit_transaction(self, timeout: float = 10.0) -> None:
        """Flush and commit: records and offsets become visible together."""
        ...

    async def abort_transaction(self, timeout: float = 10.0) -> None:
        """Abort: the transaction's records are discarded and its offsets not committed."""
        ...


class ChangelogReader(Protocol):
    """Reads a compacted changelog topic by partition, outside any consumer group."""

    async def read(
        self,
        topic: str,
        start: Mapping[int, int],
        on_records: Callable[[Sequence[InboundRecord]], None],
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[int, int]:
        """Read partition p of ``topic``, for each p that ``start`` names, from offset
        ``start[p]`` to its end (as of the call), ``read_committed``, handing batches to
        ``on_records`` on the loop thread; ``progress(records read, records expected)``
        is called as it goes. Returns the next offset per partition read."""
        ...

    async def committed_offsets(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets (next offset to read); absent when none. Read
        before joining, so recovery knows which checkpoint the sources committed."""
        ...


class TopicAdmin(Protocol):
    """Creates and checks the app's topics."""

    async def ensure_topics(
        self, topics: Mapping[str, int], *, create: bool, compacted: Sequence[str] = ()
    ) -> dict[str, int]:
        """Make sure each topic exists (creating it with the given partition count when
        ``create``); returns every topic's actual partition count. Raises BrokerError
        naming the missing topics when they do not exist and ``create`` is False."""
        ...
