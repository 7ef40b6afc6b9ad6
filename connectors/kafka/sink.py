"""KafkaSink: the service's sink connector over confluent-kafka's Producer.

Idempotent with ``acks=all`` (see :mod:`connectors.kafka.settings`), so a record reported
delivered is durable and was written once.

Threading model
    Delivery callbacks reach the service on the event loop's thread only. The loop serves
    them itself: :meth:`~KafkaSink.poll` is ``poll(0)`` and :meth:`~KafkaSink.flush` is a
    loop of ``poll(0)`` and short sleeps, never ``Producer.flush`` in another thread. The
    transaction calls that block (``init``, ``send_offsets``, ``commit``, ``abort``) run in
    the sink's worker thread; librdkafka serves delivery reports from inside them, so
    every report that arrives off the loop thread is posted back to it
    (:class:`~connectors.kafka.loop.LoopBridge`). ``commit_transaction`` first flushes on
    the loop, so that normally none does.

Backpressure
    When librdkafka's queue is full, :meth:`~KafkaSink.produce` serves delivery reports
    (``poll``) until there is room, which blocks the loop while the broker catches up,
    and raises a BrokerError after ``queue_full_timeout`` seconds rather than stalling the
    whole instance behind an unreachable broker.

Transactions
    With ``transactional_id``, :meth:`~KafkaSink.open` initialises transactions (fencing
    any earlier producer of the id); the caller brackets records with ``begin_transaction``
    and ``commit_transaction`` (or ``abort_transaction``), adding the source's offsets
    with ``send_offsets_to_transaction``. Failures carry librdkafka's verdict as
    :class:`~connectors.kafka.errors.KafkaBrokerError` flags (``abortable``, ``fatal``,
    ``retriable``); a call refused after a transaction failed says why (transaction_log).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.kafka.deferred import kafka_partitions
from connectors.kafka.errors import CLIENT_LOG, ErrorLog, KafkaBrokerError, translate
from connectors.kafka.first_contact import ErrorWitness, creation_hint, first_contact
from connectors.kafka.loop import DaemonExecutor, LoopBridge
from connectors.kafka.producer_queue import Batch as _Batch
from connectors.kafka.producer_queue import queue_limit
from connectors.kafka.settings import PRODUCER_DEFAULTS, PRODUCER_OWNED, Settings, merge
from connectors.kafka.transaction_log import TransactionLog
from connectors.reachable import unreachable
from swimstream.errors import BrokerError
from swimstream.logfields import FieldsLog
from swimstream.streams.connector import DeliveryCallback, TopicPartition
from swimstream.text import counted

log = logging.getLogger("swimstream.kafka.sink")
_SILENT = logging.Logger("swimstream.kafka.sink.settings")  # (of the settings' check:
_SILENT.disabled = True  # that client says it has no broker)

T = TypeVar("T")

_PARTITIONERS = {"murmur2": "murmur2_random", "crc32": "consistent_random"}
_OPEN_TIMEOUT = 10.0
_CONNECT_TIMEOUT = 3.0
"""Seconds a TCP connect to a bootstrap address may take before it counts as silent."""
KAFKA_PORT = 9092
_MAX_FLUSH_SLEEP = 0.01
_CLOSE_TIMEOUT = 10.0
_RELEASE_AT_LEAST = 0.5
"""Seconds a close given a deadline still lets the producer's own close take (it aborts
an open transaction, a round trip), as the service lets its sources leave after it."""


class KafkaSink:
    """Produces records to Kafka (see the module docstring).

    Args:
        bootstrap: ``host:port[,host:port...]``.
        settings: librdkafka settings over
            :data:`~connectors.kafka.settings.PRODUCER_DEFAULTS`; the ones swimstream
            owns are refused with a ConfigError.
        transactional_id: makes the sink transactional (stable per instance and app).
        partitioner: how keys map to partitions: ``murmur2`` (as the Java client) or
            ``crc32`` (librdkafka's default); None keeps librdkafka's.
        queue_full_timeout: seconds :meth:`produce` may wait for room before raising.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        settings: Settings | None = None,
        transactional_id: str | None = None,
        partitioner: Literal["murmur2", "crc32"] | None = None,
        queue_full_timeout: float = 10.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.transactional_id = transactional_id
        owned: dict[str, object] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "client.id": f"swimstream-{transactional_id or 'sink'}",
        }
        if transactional_id:
            owned["transactional.id"] = transactional_id
        if partitioner:
            owned["partitioner"] = _PARTITIONERS[partitioner]
        self._config = merge(PRODUCER_DEFAULTS, settings, PRODUCER_OWNED, owned, client="sink")
        self._where = f"Kafka sink at {bootstrap}" + (
            f" (transactional id {transactional_id!r})" if transactional_id else ""
        )
        self._log = FieldsLog(log, broker=bootstrap)
        self._errors = ErrorLog(self._log, self._where)
        self._witness = ErrorWitness()
        self._txn = TransactionLog(CLIENT_LOG, self.poll)  # (why a transaction failed)
        self._contacted = False
        """Whether the first metadata came. Until then error events only go to the
        witness: the open's outcome says what they meant, once a try, where a line per
        event and try said "is the broker running?" beside it."""
        self._queue_full_timeout = queue_full_timeout
        self._producer: Producer | None = None
        self._bridge: LoopBridge | None = None
        self._executor: DaemonExecutor | None = None
        self._pending = 0
        self._unreported = 0  # produced without a report since none was left queued
        self._batch = _Batch()  # the reported records produced since the last mark
        self._open: list[_Batch] = [self._batch]
        self.undelivered = 0
        """Records the broker refused for good, so far: an at-least-once checkpoint
        whose flush saw any (its own records carry no callback to be told) must not
        commit the offsets they depend on."""
        self._pending_waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<KafkaSink at {self.bootstrap}>"

    # -- life ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the producer, check the broker answers, initialise transactions."""
        if self._producer is not None or self._closed:
            raise BrokerError(f"{self._where} was opened already")
        # The settings first, on a client that connects nowhere: a refusal is final.
        self._create({**self._config, "bootstrap.servers": "", "logger": _SILENT}).close()
        failures = await asyncio.to_thread(
            unreachable, self.bootstrap.split(","), KAFKA_PORT, _CONNECT_TIMEOUT
        )
        if failures is not None:
            raise BrokerError(
                f"cannot reach the Kafka broker at {self.bootstrap} ({'; '.join(failures)});"
                " is the broker running, and is the bootstrap address right?",
                unreachable=True,
            )
        self._bridge = LoopBridge()
        config = {**self._config, "error_cb": self._on_error, "logger": self._txn}
        producer = self._create(config)
        self._executor = DaemonExecutor("swimstream-kafka-sink")
        self._producer = producer
        try:
            await self._blocking(
                first_contact,
                producer, self._witness, self._config, self.bootstrap, KAFKA_PORT, _OPEN_TIMEOUT,
            )  # fmt: skip
            self._contacted = True
            if self.transactional_id:
                await self._blocking(producer.init_transactions, _OPEN_TIMEOUT)
        except KafkaBrokerError:  # (the first contact's, which says why)
            await self._release()
            raise
        except KafkaException as exc:
            await self._release()
            raise translate(exc, f"opening {self._where}") from exc
        except asyncio.CancelledError:
            # A stop asked for at start: the close is queued behind the request in
            # flight, which may hang for its whole timeout (a port that is not Kafka's),
            # and the worker thread runs it then; the stop does not wait for it.
            self._release_later()
            raise
        except BaseException:
            await self._release()
            raise

    def _create(self, config: dict[str, Any]) -> Producer:
        try:
            return Producer(config)
        except KafkaException as exc:
            error = translate(exc, f"creating the producer of {self._where}")
            hint = creation_hint(exc, self._config)
            raise (KafkaBrokerError(f"{error}{hint}", code=error.code) if hint else error) from exc

    async def close(self, timeout: float | None = None) -> None:
        """Flush for up to ``timeout`` seconds (``None``: 10), then release the producer.
        Records still unacknowledged then are purged and reported failed: librdkafka's
        own close would wait for them for as long as the broker stays away."""
        if self._closed:
            return
        self._closed = True
        producer = self._producer
        if producer is None:
            return
        timeout = 10.0 if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not await self.flush(timeout):
            self._log.warning(
                "%s: closing with %s not acknowledged after %g s; each is reported failed "
                "(the broker may have written it all the same)",
                self._where,
                counted(self._pending, "record"),
                timeout,
            )
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            await self.flush(1.0)
        # Within the deadline too: a transactional producer's close waited 10 s for a
        # frozen broker, and a SIGTERM's drain exited 18 s after the signal.
        await self._release(max(_RELEASE_AT_LEAST, deadline - time.monotonic()))

    # -- records ------------------------------------------------------------------------

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
        """Queue one record, to ``partition`` when given (else by key); serves delivery
        reports while the queue is full (see the module docstring). ``on_written`` is
        told ``(partition, offset)`` once the record is written (the changelog's
        checkpoints record where they ended)."""
        producer = self._producer
        if producer is None:
            raise BrokerError(f"{self._where} is not open")
        report: Callable[[KafkaError | None, Message], None]
        batch = self._batch
        if on_written is not None:
            report = functools.partial(self._report_written, batch, on_delivery, on_written)
        elif on_delivery is not None:
            report = functools.partial(self._report, batch, on_delivery)
        else:
            report = functools.partial(self._count, batch)
        listed: Any = (headers if type(headers) is list else list(headers)) if headers else None
        where = -1 if partition is None else partition
        deadline: float | None = None
        produce: Any = producer.produce
        while True:
            try:
                # Positional, as in produce_many: a quarter cheaper than keywords.
                produce(topic, value, key, where, report, None, 0, listed)
                break
            except BufferError:
                deadline = self._wait_for_room(topic, deadline)
            except KafkaException as exc:
                doing = f"producing to topic {topic!r} on {self._where}"
                raise self._txn.translate(exc, doing) from exc
        if self._pending_waiter is not None:  # (None while records are pending)
            self._wake_poller()
        self._pending += 1
        batch.pending += 1

    def produce_many(
        self,
        topic: str,
        records: Iterable[tuple[bytes | None, bytes | None, int]],
        headers: Sequence[tuple[str, bytes]],
        *,
        reported: bool = True,
    ) -> None:
        """Queue ``(key, value, partition)`` records sharing ``headers`` (see
        :meth:`produce`; a full queue takes its slow path, which waits for room).
        ``reported=False`` saves the delivery report's Python call (about a microsecond
        a record): for a transaction's records, whose commit fails if any of them did."""
        producer = self._producer
        if producer is None:
            raise BrokerError(f"{self._where} is not open")
        produce: Any = producer.produce
        listed: Any = list(headers) if headers else None  # list[tuple[str, bytes]] is fine
        batch = self._batch
        report = functools.partial(self._count, batch) if reported else None
        queued = 0
        try:
            for key, value, partition in records:
                try:
                    # Positional (topic, value, key, partition, on_delivery, callback,
                    # timestamp, headers): a quarter cheaper than keywords per record.
                    produce(topic, value, key, partition, report, None, 0, listed)
                except BufferError:  # (the queue is full: the slow path, which waits)
                    self._produce_when_room(topic, value, key, partition, report, listed)
                queued += 1
        except KafkaException as exc:
            doing = f"producing to topic {topic!r} on {self._where}"
            raise self._txn.translate(exc, doing) from exc
        finally:
            if not reported:
                self._unreported += queued
            elif queued:
                if self._pending_waiter is not None:
                    self._wake_poller()
                self._pending += queued
                batch.pending += queued

    def _produce_when_room(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        report: Any,
        listed: Any,
    ) -> None:
        """:meth:`produce_many`'s record that found the queue full: wait for room (see
        :meth:`_wait_for_room`) and produce it. Out of the loop, which then costs each
        record no retry loop of its own (a checkpoint produces thousands)."""
        producer = self._producer
        assert producer is not None
        deadline = self._wait_for_room(topic, None)
        while True:
            try:
                producer.produce(topic, value, key, partition, report, None, 0, listed)
                return
            except BufferError:
                deadline = self._wait_for_room(topic, deadline)

    def _wait_for_room(self, topic: str, deadline: float | None) -> float:
        """The producer's queue is full: serve delivery reports for a moment (returns the
        deadline to pass next time; BrokerError once it passed)."""
        producer = self._producer
        assert producer is not None
        now = time.monotonic()
        deadline = deadline or now + self._queue_full_timeout
        if now >= deadline:
            raise BrokerError(
                f"{self._where}: the producer queue stayed full for "
                f"{self._queue_full_timeout:g} s ({counted(len(producer), 'record')} waiting for "
                f"topic {topic!r} and others); is the broker reachable?"
            )
        producer.poll(0.01)
        return deadline

    def poll(self) -> None:
        """Serve delivery reports that arrived, without waiting."""
        if self._producer is not None:
            self._txn.poll(self._producer)  # (a fatal error it raises is kept)

    async def wait_for_pending(self) -> None:
        """Return once a record waits for its delivery report (at once if one does)."""
        if self._pending:
            return
        waiter = self._pending_waiter
        if waiter is None or waiter.done():
            waiter = self._pending_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)  # (a cancelled wait leaves it for the next one)

    def _wake_poller(self) -> None:
        waiter, self._pending_waiter = self._pending_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def flush(self, timeout: float) -> bool:
        """Serve delivery reports until none is pending (True) or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            self.poll()
            if self._pending == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_FLUSH_SLEEP)

    def mark(self) -> object:
        """A mark after every record produced so far, for :meth:`flush_to`."""
        marked = [batch for batch in self._open if batch.pending]
        self._batch = _Batch()
        self._open = [*marked, self._batch]
        return marked

    async def flush_to(self, mark: object, timeout: float) -> bool:
        """Serve delivery reports until every record produced before ``mark`` is
        reported (True), or ``timeout`` passed. The records produced since do not hold
        it up: an at-least-once checkpoint waits for its cut's records only, which under
        a steady stream of insights :meth:`flush` may not see the end of for long."""
        batches = cast(list[_Batch], mark)  # (what mark returned)
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            self.poll()
            if not any(batch.pending for batch in batches):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_FLUSH_SLEEP)

    @property
    def pending(self) -> int:
        """Records queued but not yet acknowledged (or failed), and those produced
        without a report (a transaction's) that librdkafka's queue still holds (it may
        count a request or two with them): the sources pause for them all
        (:mod:`swimstream.streams.sink_pressure`)."""
        pending, producer = self._pending, self._producer
        if self._unreported and producer is not None:
            unreported = len(producer) - pending
            if unreported <= 0:
                self._unreported = 0  # (all of them are done)
            return pending + max(0, min(unreported, self._unreported))
        return pending

    @property
    def queue_limit(self) -> int:
        """Records the producer's queue holds (:func:`~.producer_queue.queue_limit`)."""
        return queue_limit(self._config)

    # -- transactions -------------------------------------------------------------------

    def begin_transaction(self) -> None:
        """Start a transaction: every record produced until commit or abort is in it."""
        try:
            self._require_transactions().begin_transaction()
        except KafkaException as exc:
            raise self._txn.translate(exc, f"beginning a transaction on {self._where}") from exc

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int],
        group_metadata: object,
        timeout: float = 10.0,
    ) -> None:
        """Make committing the source's ``offsets`` (next offset to read) part of the
        transaction; ``group_metadata`` comes from the source's consumer."""
        producer = self._require_transactions()
        positions = kafka_partitions(offsets.keys(), offsets)
        try:
            await self._blocking(
                producer.send_offsets_to_transaction, positions, group_metadata, timeout
            )
        except KafkaException as exc:
            what = f"adding the source's offsets to the transaction on {self._where}"
            raise self._txn.translate(exc, what) from exc

    async def commit_transaction(self, timeout: float = 10.0) -> None:
        """Flush on the loop, then commit: the records and offsets become visible."""
        producer = self._require_transactions()
        deadline = time.monotonic() + timeout
        await self.flush(timeout)
        try:
            await self._blocking(producer.commit_transaction, max(0.1, deadline - time.monotonic()))
        except KafkaException as exc:
            raise self._txn.translate(exc, f"committing the transaction on {self._where}") from exc

    async def abort_transaction(self, timeout: float = 10.0) -> None:
        """Abort: queued records are dropped (reported failed), written ones hidden from
        ``read_committed`` readers (on Apache Kafka; on Tansu, see
        ``connectors/embedded/kafka.py``)."""
        producer = self._require_transactions()
        try:
            await self._blocking(producer.abort_transaction, timeout)
        except KafkaException as exc:
            raise translate(exc, f"aborting the transaction on {self._where}") from exc
        self.poll()

    # -- internals ----------------------------------------------------------------------

    def _report(
        self,
        batch: _Batch,
        on_delivery: DeliveryCallback,
        error: KafkaError | None,
        message: Message,
    ) -> None:
        bridge = self._bridge
        if bridge is not None and not bridge.on_loop_thread:
            bridge.post(lambda: self._report(batch, on_delivery, error, message))
            return
        self._pending -= 1
        batch.pending -= 1
        failure = None
        if error is not None:
            self.undelivered += 1
            where = f"{message.topic()}[{message.partition()}]"
            failure = translate(error, f"delivering a record to {where} on {self._where}")
        try:
            on_delivery(failure)
        except Exception:
            self._log.exception("%s: a delivery callback raised", self._where)

    def _report_written(
        self,
        batch: _Batch,
        on_delivery: DeliveryCallback | None,
        on_written: Callable[[int, int], None],
        error: KafkaError | None,
        message: Message,
    ) -> None:
        bridge = self._bridge
        if bridge is not None and not bridge.on_loop_thread:
            bridge.post(
                lambda: self._report_written(batch, on_delivery, on_written, error, message)
            )
            return
        if error is None:
            try:
                on_written(message.partition() or 0, message.offset() or 0)
            except Exception:
                self._log.exception("%s: an on_written callback raised", self._where)
        if on_delivery is not None:
            self._report(batch, on_delivery, error, message)
        else:
            self._count(batch, error, message)

    def _count(self, batch: _Batch, error: KafkaError | None, message: Message) -> None:
        bridge = self._bridge
        if bridge is not None and not bridge.on_loop_thread:
            bridge.post(lambda: self._count(batch, error, message))
            return
        self._pending -= 1
        batch.pending -= 1
        if error is not None:
            self.undelivered += 1
            self._errors.report(error)

    def _on_error(self, error: KafkaError) -> None:
        self._witness.saw(error)
        if self._contacted or error.fatal():
            self._errors.report(error, logging.ERROR if error.fatal() else logging.WARNING)

    def _require_transactions(self) -> Producer:
        if self._producer is None:
            raise BrokerError(f"{self._where} is not open")
        if not self.transactional_id:
            raise BrokerError(f"{self._where} was created without a transactional_id")
        return self._producer

    async def _blocking(self, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    def _release_later(self) -> None:
        """Queue the producer's close on its worker thread, and wait for nothing."""
        producer, executor = self._producer, self._executor
        self._producer = None
        if executor is not None:
            if producer is not None:
                executor.submit(producer.close)
            executor.shutdown(wait=False)  # the thread ends after the close

    async def _release(self, timeout: float = _CLOSE_TIMEOUT) -> None:
        """Close the producer on its thread, waiting ``timeout`` seconds at most
        (:data:`_CLOSE_TIMEOUT` at most) before leaving it behind."""
        producer, executor = self._producer, self._executor
        self._producer = None
        if executor is None:
            return
        if producer is None:
            executor.shutdown(wait=False)
            return
        # close() aborts an open transaction, which waits for the broker: bounded.
        closing = asyncio.get_running_loop().run_in_executor(executor, producer.close)
        executor.shutdown(wait=False)  # the thread ends after the close
        done, _ = await asyncio.wait([closing], timeout=min(timeout, _CLOSE_TIMEOUT))
        if not done:
            self._log.error(
                "%s: the broker did not answer while closing; abandoned the producer",
                self._where,
            )
        elif (failure := closing.exception()) is not None:
            self._log.warning("%s: closing the producer failed: %s", self._where, failure)
