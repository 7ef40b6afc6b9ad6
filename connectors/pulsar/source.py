"""The Pulsar source: a Key_Shared subscription read the way the service reads Kafka.

**Guarantee: at-least-once.** A message is acknowledged only when the service commits
an offset past it; whatever was never acknowledged is redelivered by Pulsar after a
restart (or to another consumer of the subscription when this one leaves). So effects
may repeat, never get lost. Exactly-once needs Kafka transactions
(``send_offsets_to_transaction``) and is Kafka-only. Even an acknowledged message can
come back when it shared a producer batch with one that was not (acknowledgement is per
batch unless batch-index acknowledgement is on, which pulsar-lite gets wrong; see
:mod:`connectors.pulsar`). A message delivered again while the service still holds it
(a reconnect redelivers everything unacknowledged) is dropped rather than handed out
twice (:mod:`connectors.pulsar.offsets`).

Why it is built this way:

* **Key_Shared, the nearest thing to a Kafka partition.** Every key of a subscription
  goes to one consumer, so an agent's events arrive in order at one instance. Pulsar
  moves key ranges between consumers by itself when members come and go, and keeps
  per-key order while doing it; nothing of that is visible to a client. The
  subscription type is a setting (:class:`~connectors.pulsar.settings.PulsarSettings`);
  on pulsar-lite it must be Shared, the one type it delivers correctly
  (:data:`~connectors.pulsar.settings.PULSAR_LITE_SETTINGS`).
* **One consumer per topic partition.** A partitioned topic is resolved to its
  partitions at ``open`` and each gets its own consumer, so pausing a partition is
  simply not reading its consumer: its receive queue fills up to ``receiver_queue_size``
  and then the broker stops sending. That is the memory bound of a paused partition,
  with nothing buffered on our side but the one message a wait may have taken.
* **Offsets are local numbers** (:mod:`connectors.pulsar.offsets`): ``commit``
  acknowledges, one by one, every message handed out below each committed offset.
  Cumulative acknowledgement would be cheaper but Key_Shared refuses it.
* **Nothing blocks the event loop.** ``consume`` pops the client's receive queue with a
  zero timeout (a queue pop in C++; measured 335k messages/s), on the loop thread.
  ``wait_for_records`` arms ``receive_async`` on every readable partition; the client's
  thread completes it and the message hops to the loop (``call_soon_threadsafe``), so
  no thread is held while waiting. The message that ends a wait is kept for the next
  ``consume``, which leaves a partition alone while its receive is armed: the order of
  each partition is the broker's.
* **Rebalances do not exist in Kafka's sense.** Pulsar assigns keys, not partitions, and
  tells the client nothing. The rebalance listener is called once, from the first
  ``consume`` or ``wait_for_records``, with every partition subscribed as assigned, and
  once more in ``close`` with all of them revoked (so the service commits its final
  offsets, as confluent-kafka's ``close`` lets it).
* **Watermarks are not known.** Pulsar reports no high watermark in the space of local
  offsets, so :meth:`PulsarSource.high_watermarks` returns ``{}`` ("unknown") rather than
  a number that would claim the source caught up; :meth:`PulsarSource.positions` is the
  next local offset per partition, which is exact.
* ``connected`` is the client's own view of each consumer's connection: it turns False
  when a connection drops and True again when the client has reconnected by itself; and
  a probe's (:mod:`connectors.pulsar.probe`) of whether the broker answers at all, as a
  hung broker closes no connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from connectors.pulsar._client import (
    Consumer,
    Message,
    MessageId,
    PulsarClient,
    PulsarError,
    ReceiveTimeout,
    Result,
    acquire_client,
    check_reachable,
    close_within,
    is_ok,
    let_go,
    release_client,
)
from connectors.pulsar._errors import broker_error, result_error
from connectors.pulsar.acks import AckBook
from connectors.pulsar.first_contact import check_first_contact
from connectors.pulsar.offsets import OffsetLedger
from connectors.pulsar.probe import BrokerProbe
from connectors.pulsar.records import PulsarRecord
from connectors.pulsar.settings import PulsarSettings, Setting
from swimstream.errors import BrokerError, ConfigError
from swimstream.streams.connector import (
    Rebalance,
    RebalanceListener,
    RevokeHook,
    TopicPartition,
)
from swimstream.text import counted

log = logging.getLogger("swimstream.pulsar")

_SUBSCRIBE_NOTES = {
    "Timeout": (
        "on pulsar-lite, a consumer of another process on the same subscription and topic "
        "has this effect (see connectors.pulsar)"
    )
}

_PARTITION_SUFFIX = re.compile(r"^(?P<topic>.+)-partition-(?P<number>\d+)$")


def split_partition(topic: str) -> tuple[str, int]:
    """``("t", 3)`` for ``t-partition-3``; ``(topic, 0)`` for a topic without partitions."""
    match = _PARTITION_SUFFIX.match(topic)
    if match is None:
        return topic, 0
    return match["topic"], int(match["number"])


_Id = tuple[int, int, int]


def _identity(message_id: MessageId) -> _Id:
    """What two deliveries of one message to one partition's consumer share
    (pulsar-client's ids are not hashable)."""
    return message_id.ledger_id(), message_id.entry_id(), message_id.batch_index()


@dataclass(eq=False, slots=True)
class _Feed:
    """One consumer on one topic partition, as the event loop sees it."""

    partition: TopicPartition
    consumer: Consumer
    paused: bool = False
    armed: bool = False
    """A ``receive_async`` is outstanding; its message has not landed yet."""
    landed: Message | None = None
    """The message that ended a wait, handed out first by the next ``consume``."""
    failure: BrokerError | None = None
    """Why the last wait on this consumer failed; it is not armed again (a closed
    consumer fails at once, every time) until ``consume`` reads from it."""
    acks: AckBook[MessageId] = field(default_factory=AckBook)
    """Acknowledgements the client may yet lose (:mod:`connectors.pulsar.acks`)."""


class PulsarSource:
    """Consumes Pulsar topics as one member of a subscription (at-least-once).

    Args:
        service_url: ``pulsar://host:6650`` (several hosts: ``pulsar://h1:6650,h2:6650``).
        subscription: the subscription name, the counterpart of Kafka's ``group.id``.
        topics: the source topics; records report them under these names.
        consumer_name: how this member shows in the broker's statistics (the instance id
            is a good choice); the client picks one when ``None``. With a Failover
            subscription, the member whose name sorts first is the active one.
        settings: a :class:`PulsarSettings` or a mapping of its field names.
    """

    reports_watermarks = False
    """See the module docstring: nothing comparable to local offsets."""

    def __init__(
        self,
        service_url: str,
        subscription: str,
        topics: Sequence[str],
        *,
        consumer_name: str | None = None,
        settings: PulsarSettings | Mapping[str, Setting] | None = None,
    ) -> None:
        if isinstance(topics, str) or not topics:
            raise ConfigError(problems=[("topics", "a Pulsar source needs a list of topics")])
        self.service_url = service_url
        self.subscription = subscription
        self.topics = tuple(dict.fromkeys(topics))
        self.consumer_name = consumer_name
        self.settings = PulsarSettings.of(settings)
        self._client: PulsarClient | None = None
        self._probe: BrokerProbe | None = None
        self._closed = False
        self._feeds: list[_Feed] = []
        self._by_partition: dict[TopicPartition, _Feed] = {}
        self._ledger: OffsetLedger[MessageId] = OffsetLedger(_identity)
        self._late_repeats = 0
        self._listener: RebalanceListener | None = None
        self._announced = False
        self._rotation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()

    def __repr__(self) -> str:
        return f"<PulsarSource {self.subscription!r} on {list(self.topics)} at {self.service_url}>"

    # -- life cycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Check the broker answers, resolve partitions and subscribe to each.

        Raises:
            BrokerError: the broker is unreachable (within ``connection_timeout``), it
                refuses the client's TLS or credentials
                (:mod:`connectors.pulsar.first_contact`), or a subscription was refused
                (the message names the topic and the reason).
        """
        if self._client is not None or self._closed:
            raise BrokerError(f"{self!r} was already opened; a source is opened once")
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(check_reachable, self.service_url, self.settings.connection_timeout)
        await asyncio.to_thread(
            check_first_contact,
            self.service_url,
            self.settings.connection_timeout,
            self.settings.security,
        )
        client = acquire_client(self.service_url, self.settings, "consume")
        subscribing = asyncio.ensure_future(asyncio.to_thread(self._subscribe_all, client))
        try:
            feeds = await asyncio.shield(subscribing)
        except asyncio.CancelledError:
            # A thread cannot be stopped: let the subscriptions finish, then undo them, so
            # that no consumer outlives a cancelled open, sitting on messages.
            try:
                opened = await subscribing
            except Exception:
                opened = []  # a failing subscribe closes what it had opened itself
            await asyncio.to_thread(_close_feeds, opened, client)
            raise
        except BaseException:
            await asyncio.to_thread(release_client, client)
            raise
        probe = BrokerProbe(self.service_url, self.topics[0], self.settings)
        starting = asyncio.ensure_future(asyncio.to_thread(probe.start))
        try:
            await asyncio.shield(starting)
        except BaseException:
            # Undone here, once: the source is not open, so close() gives nothing back
            # again. A cancelled start goes on in its thread; stop the probe it started.
            with contextlib.suppress(Exception):
                await starting
            await asyncio.to_thread(probe.stop)
            await asyncio.to_thread(_close_feeds, feeds, client)
            raise
        self._client = client
        self._feeds = feeds
        self._by_partition = {feed.partition: feed for feed in feeds}
        self._probe = probe
        log.info(
            "Pulsar source %r subscribed to %s of %s",
            self.subscription,
            counted(len(feeds), "partition"),
            ", ".join(self.topics),
            extra={"group": self.subscription, "topics": list(self.topics)},
        )

    def _subscribe_all(self, client: PulsarClient) -> list[_Feed]:
        """Runs in a worker thread: lookups and subscriptions are blocking round trips."""
        feeds: list[_Feed] = []
        try:
            for topic in self.topics:
                try:
                    for partition_topic in client.partitions_of(topic):
                        number = split_partition(partition_topic)[1]
                        consumer = client.subscribe(
                            partition_topic, self.subscription, self.consumer_name, self.settings
                        )
                        # Named as configured, even one partition (``t-partition-3``) on
                        # its own: the service routes a record by the topic it reports.
                        feeds.append(_Feed(TopicPartition(topic, number), consumer))
                except PulsarError as exc:
                    doing = f"subscribing {self.subscription!r} to topic {topic!r}"
                    raise broker_error(exc, doing, _SUBSCRIBE_NOTES) from exc
        except BaseException:
            for feed in feeds:
                _close_quietly(feed.consumer.close, f"the consumer of {feed.partition}")
            raise
        return feeds

    async def close(self, timeout: float | None = None) -> None:
        """Revoke every partition through the listener, acknowledge what it returns, and
        close the consumers (which sends acknowledgements still batched) and the client,
        waiting for the broker up to ``timeout`` seconds in all (``operation_timeout``
        when ``None``).

        The consumers close all at once: one by one, each waited for the broker up to the
        operation timeout, so a SIGTERM while the broker was away took 10 s per partition
        (plus 4 s for the probe), past the drain's deadline. Unacknowledged messages,
        and acknowledgements the broker did not take in time, are redelivered to the
        subscription's other consumers, or to the next one that subscribes.
        """
        client = self._client
        if self._closed:
            return
        bound = self.settings.operation_timeout if timeout is None else timeout
        try:
            if client is not None and self._listener is not None and self._announced:
                self.commit(self._listener(Rebalance(revoked=tuple(self._by_partition))))
        finally:
            self._closed = True
            closing = []
            if self._probe is not None:
                closing.append(self._probe.close(bound))
            if client is not None:
                closing.append(_close_feeds_within(self._feeds, client, bound))
            await asyncio.gather(*closing)

    # -- reading ----------------------------------------------------------------------

    def consume(self, max_records: int) -> list[PulsarRecord]:
        """What the client has already received, up to ``max_records``, without waiting.

        Partitions take turns being read first, so a busy one cannot starve the others.
        """
        feeds = self._open_feeds()
        self._announce()
        self._watch_connections()
        records: list[PulsarRecord] = []
        count = len(feeds)
        first = self._rotation
        self._rotation = (first + 1) % count
        for step in range(count):
            if len(records) >= max_records:
                break
            feed = feeds[(first + step) % count]
            if not feed.paused and not feed.armed:
                self._drain(feed, records, max_records)
        return records

    def _drain(self, feed: _Feed, records: list[PulsarRecord], limit: int) -> None:
        partition = feed.partition
        while len(records) < limit:
            message = feed.landed
            if message is None:
                try:
                    message = feed.consumer.receive(0)
                except ReceiveTimeout:
                    return
                except PulsarError as exc:
                    raise broker_error(exc, f"receiving from {partition}") from exc
            else:
                feed.landed = None
            feed.failure = None
            message_id = message.message_id()
            identity = _identity(message_id)
            if feed.acks.copy(identity) is not None:
                self._committed_already(feed, message_id, identity)
                continue
            offset = self._ledger.assign(partition, message_id, identity)
            if offset is not None:  # (None: a repeat of a message still being processed)
                records.append(PulsarRecord(message, partition.topic, partition.partition, offset))

    def _committed_already(self, feed: _Feed, message_id: MessageId, identity: _Id) -> None:
        """A message committed already came again, its acknowledgement lost (see
        :meth:`commit`): acknowledged again, and dropped."""
        self._acknowledge(feed, [(message_id, identity)])
        self._late_repeats += 1

    async def wait_for_records(self, timeout: float) -> None:
        """Return when a record has arrived on a partition that is not paused, or after
        ``timeout`` seconds (or when a partition is resumed)."""
        feeds = self._open_feeds()
        self._announce()
        self._watch_connections()
        readable = [feed for feed in feeds if not feed.paused]
        if any(feed.landed is not None for feed in readable):
            return
        self._wakeup.clear()
        for feed in readable:
            if not feed.armed and feed.failure is None:
                feed.armed = True
                feed.consumer.receive_async(functools.partial(self._received, feed))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()

    async def keep_membership(self, timeout: float) -> None:
        """Wait ``timeout`` seconds: a Pulsar consumer owes its broker nothing while the
        service reads none of its messages (the client keeps the connection alive on its
        own threads, and the broker stops sending once the receiver queue is full)."""
        await asyncio.sleep(timeout)

    def _received(self, feed: _Feed, result: Result, message: Message) -> None:
        """Runs on a client thread, where an escaping exception would end the process."""
        try:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._land, feed, result, message)
        except Exception:  # the loop is closed: the message is redelivered, never lost
            log.debug("a message for %s arrived after its event loop closed", feed.partition)

    def _land(self, feed: _Feed, result: Result, message: Message) -> None:
        feed.armed = False
        if self._closed:
            return
        if is_ok(result):
            feed.landed = message
        elif feed.failure is None:
            feed.failure = result_error(result.name, f"receiving from {feed.partition}")
            log.warning("%s", feed.failure)
        self._wakeup.set()

    # -- flow and progress ------------------------------------------------------------

    def set_rebalance_listener(
        self, listener: RebalanceListener, before_revoke: RevokeHook | None = None
    ) -> None:
        """Store ``listener``; it hears of the (only) assignment at the next read.
        ``before_revoke`` is never called: Pulsar moves keys without telling the client
        (see the module docstring), and the revoke in :meth:`close` comes after the
        service's final checkpoint, with nothing left to commit before it."""
        self._listener = listener
        self._announced = False

    def _announce(self) -> None:
        if self._listener is not None and not self._announced:
            self._announced = True
            self._listener(Rebalance(assigned=tuple(self._by_partition)))

    def assignment(self) -> set[TopicPartition]:
        """Every partition subscribed: with Key_Shared, each may deliver some keys here."""
        return set(self._by_partition)

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        """Stop reading ``partitions``: the client's queue of each fills up to
        ``receiver_queue_size`` messages and the broker then holds the rest."""
        for partition in partitions:
            feed = self._by_partition.get(partition)
            if feed is not None:
                feed.paused = True

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        """Read ``partitions`` again, from where they stopped."""
        for partition in partitions:
            feed = self._by_partition.get(partition)
            if feed is not None:
                feed.paused = False
        self._wakeup.set()

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Acknowledge every message handed out below each offset.

        The client batches acknowledgements and sends them within 100 ms; ``close``
        sends what is left. Offsets of partitions not subscribed here are ignored.

        The client loses acknowledgements given while its consumer is disconnected
        (its broker restarting, its topic moving to another broker), and those it still
        grouped when the connection went; the broker then redelivers those messages,
        which were applied twice. Such acknowledgements are given again once the
        consumer is connected, and their copies dropped (:mod:`connectors.pulsar.acks`).
        """
        self._open_feeds()
        for partition, offset in offsets.items():
            feed = self._by_partition.get(partition)
            if feed is None:
                continue
            released = self._ledger.release_identified(partition, offset)
            if released:
                self._acknowledge(feed, released)
        self._watch_connections()

    def _acknowledge(self, feed: _Feed, messages: Sequence[tuple[MessageId, Hashable]]) -> None:
        """Acknowledge ``messages`` (id, identity) now, or once ``feed`` is connected
        again."""
        consumer = feed.consumer
        if not consumer.is_connected():
            feed.acks.held(messages)
            return
        for message_id, _ in messages:
            try:
                consumer.acknowledge(message_id)
            except PulsarError as exc:
                raise broker_error(exc, f"acknowledging messages of {feed.partition}") from exc
        feed.acks.given(messages, time.monotonic())

    def _watch_connections(self) -> None:
        """Note which consumers are connected: the acknowledgements of one seen
        disconnected are given again once it is back (:mod:`connectors.pulsar.acks`)."""
        now = time.monotonic()
        for feed in self._feeds:
            if feed.acks:
                due = feed.acks.seen(feed.consumer.is_connected(), now)
                if due:
                    self._acknowledge(feed, due)

    @property
    def repeats(self) -> int:
        """Deliveries dropped because their message was still being processed
        (:mod:`connectors.pulsar.offsets`), or was committed already and its
        acknowledgement lost (:mod:`connectors.pulsar.acks`)."""
        return self._ledger.repeats + self._late_repeats

    def high_watermarks(self) -> dict[TopicPartition, int]:
        """``{}``: Pulsar reports nothing comparable to local offsets (module docstring)."""
        return {}

    def positions(self) -> dict[TopicPartition, int]:
        """The local offset the next message of each partition will get."""
        return {partition: self._ledger.next_offset(partition) for partition in self._by_partition}

    @property
    def connected(self) -> bool:
        """True while open, the broker answers lookups (:mod:`connectors.pulsar.probe`),
        and every consumer has a connection to its broker and did not fail its last wait."""
        if self._client is None or self._closed:
            return False
        if self._probe is not None and not self._probe.answering:
            return False
        return all(feed.failure is None and feed.consumer.is_connected() for feed in self._feeds)

    def _open_feeds(self) -> list[_Feed]:
        if self._closed:
            raise BrokerError(f"{self!r} is closed")
        if self._client is None:
            raise BrokerError(f"{self!r} is not open; await open() first")
        return self._feeds


def _close_feeds(feeds: Sequence[_Feed], client: PulsarClient) -> None:
    """Close the consumers (sending acknowledgements still batched), then give the client
    back; blocks."""
    for feed in feeds:
        _close_quietly(feed.consumer.close, f"the consumer of {feed.partition}")
    release_client(client)


async def _close_feeds_within(feeds: Sequence[_Feed], client: PulsarClient, timeout: float) -> None:
    """:func:`_close_feeds` without blocking, waiting for the broker up to ``timeout``
    seconds: the consumers at once, then the client in what is left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    consumers = {f"the consumer of {feed.partition}": feed.consumer for feed in feeds}
    closed = await close_within(consumers, timeout)
    await let_go(client, max(0.0, deadline - loop.time()), abandoned=not closed)


def _close_quietly(close: Callable[[], None], what: str) -> None:
    """Close something whose failure to close changes nothing for the caller."""
    try:
        close()
    except PulsarError as exc:
        log.warning("closing %s failed: %s", what, broker_error(exc, "closing"))
