"""The Pulsar sink: insights and dead letters produced to Pulsar topics.

A record acknowledged through ``on_delivery(None)`` is persisted by the broker. Pulsar
deduplication is a namespace policy, off by default, so a record retried after a lost
acknowledgement may be written twice: the sink is at-least-once (Kafka's idempotent
producer is what makes "written once" hold there).

Why it is built this way:

* **One producer per topic, made on first use.** Making one is a broker round trip, and
  ``produce`` runs on the event loop, so the first record for a topic starts the
  creation in a worker thread and waits in a local queue; the queue is sent, in order,
  the moment the producer exists, and every later record goes straight to it. A broker
  that does not answer (``ConnectError``, ``Timeout``) is tried again, backing off from
  1 s to 10 s, for up to ``send_timeout``: the bound a record sent on an existing
  producer gets, so a short outage just as a topic gets its first record (its first
  dead letter, a rare alert) delays it rather than fails it and stops the service.
  Any other failure (a refused topic, missing permissions) is final at once: each
  waiting record's ``on_delivery`` gets the error and the next record tries again.
* **Delivery callbacks run on the event loop.** The client reports deliveries on its own
  threads; the sink hops each report to the loop with ``call_soon_threadsafe`` before
  calling ``on_delivery``, so callbacks may touch the service's state without locks,
  and a failed result code arrives as a :class:`~swimstream.errors.BrokerError`.
  ``poll`` therefore has nothing to serve: the loop serves the reports as it turns.
* **A full queue holds records in the sink, never the event loop.** The client blocks
  the thread that sends into a queue of ``max_pending_messages`` records
  (``block_if_queue_full``), and that thread was the loop: an agent publishing many
  insights per record to a frozen broker held the whole instance (``/healthz``
  unanswered for a minute) until the queued records timed out. So the sink hands a
  topic's producer at most ``max_pending_messages`` records at a time; the rest wait
  in order in the topic's backlog and go out as delivery reports free room. They
  count in ``pending``, so the sources pause for them (the service's sink pressure)
  and memory stays bounded by the records in flight.
* **Key-based batching**, so a Key_Shared consumer downstream gets each key whole, and
  because pulsar-lite dispatches batched messages far faster (see
  :mod:`connectors.pulsar.settings`).
* ``flush`` pushes out partly filled batches (``flush_async``, no thread) and waits on
  the loop until every report has been served. ``pending`` counts records whose report
  has not yet reached ``on_delivery``, so it is 0 exactly when every callback has run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Mapping, Sequence

from connectors.pulsar._client import (
    Message,
    MessageId,
    Producer,
    PulsarClient,
    PulsarError,
    Result,
    acquire_client,
    build_message,
    check_reachable,
    close_within,
    ignore_result,
    is_ok,
    let_go,
)
from connectors.pulsar._errors import broker_error, result_error
from connectors.pulsar.first_contact import check_first_contact
from connectors.pulsar.records import encode_key, encode_properties
from connectors.pulsar.settings import PulsarSettings, Setting
from swimstream.errors import BrokerError
from swimstream.streams.connector import DeliveryCallback

log = logging.getLogger("swimstream.pulsar")

_Waiting = list[tuple[Message, DeliveryCallback | None]]

_REPORTS_AFTER_CLOSE = 1.0
"""Seconds ``close`` waits for the reports of records its producers failed."""

FIRST_CREATE_RETRY = 1.0
"""Seconds before the first new try at creating a producer the broker did not answer."""

LAST_CREATE_RETRY = 10.0
"""The longest pause between two tries; the pause doubles from the first up to this."""


class _Outlet:
    """One topic's producer and the records the sink holds back from it."""

    __slots__ = ("backlog", "in_queue", "producer", "topic")

    def __init__(self, topic: str, producer: Producer) -> None:
        self.topic = topic
        self.producer = producer
        self.in_queue = 0
        """Records handed to the producer whose report has not been served yet."""
        self.backlog: deque[tuple[Message, DeliveryCallback | None]] = deque()
        """Records waiting for room in the producer's queue, oldest first."""


_Report = tuple[_Outlet, DeliveryCallback | None, BrokerError | None]


class PulsarSink:
    """Produces records to Pulsar topics (at-least-once).

    Args:
        service_url: ``pulsar://host:6650`` (several hosts: ``pulsar://h1:6650,h2:6650``).
        settings: a :class:`PulsarSettings` or a mapping of its field names.
    """

    def __init__(
        self, service_url: str, *, settings: PulsarSettings | Mapping[str, Setting] | None = None
    ) -> None:
        self.service_url = service_url
        self.settings = PulsarSettings.of(settings)
        self._client: PulsarClient | None = None
        self._closed = False
        self._sending_ended = False  # set by close once no producer is left to send
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outlets: dict[str, _Outlet] = {}
        self._queue_limit = self.settings.max_pending_messages
        self._waiting: dict[str, _Waiting] = {}
        self._creations: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()  # ends the pause of a creation waiting to retry
        self._pending = 0
        # Delivery reports cross from the client's threads to the loop through this
        # queue; one loop callback serves every report queued before it runs, so a
        # burst of acknowledgements wakes the loop once, not once per record.
        self._reports: deque[_Report] = deque()
        self._reports_scheduled = False
        self._drained = asyncio.Event()
        self._drained.set()

    def __repr__(self) -> str:
        return f"<PulsarSink at {self.service_url}>"

    # -- life cycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Check the broker accepts connections and create the client.

        Problems the broker raises later (a topic it refuses, missing permissions) are
        reported per record, through ``on_delivery``.

        Raises:
            BrokerError: the broker is unreachable within ``connection_timeout``, or
                what answers at the service URL is no Pulsar broker
                (:mod:`connectors.pulsar.handshake`), or it refuses the client's TLS
                or credentials (:mod:`connectors.pulsar.first_contact`).
        """
        if self._client is not None or self._closed:
            raise BrokerError(f"{self!r} was already opened; a sink is opened once")
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(check_reachable, self.service_url, self.settings.connection_timeout)
        await asyncio.to_thread(
            check_first_contact,
            self.service_url,
            self.settings.connection_timeout,
            self.settings.security,
        )
        self._client = acquire_client(self.service_url, self.settings, "produce")

    async def close(self, timeout: float | None = None) -> None:
        """Flush for up to ``close_timeout`` seconds, then close the producers and the
        client, all in ``timeout`` seconds at most (``None``: no bound but the flush's
        and ``operation_timeout`` for the closing).

        Records still in flight then fail, each through its ``on_delivery``, before
        ``close`` returns: none is dropped without a report. A producer still being
        created is waited for, within the same bound, so that its records get sent, or
        their report.

        Everything is closed at once and nothing blocks on the broker past the bound:
        the service passes what is left of its drain, and a SIGTERM while the broker
        was away used to take the flush's 10 s again plus 10 s per producer.
        """
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        began = loop.time()
        client = self._client
        flush_for = self.settings.close_timeout
        if client is not None:
            await self.flush(flush_for if timeout is None else min(flush_for, timeout))
        self._closed = True
        self._closing.set()
        if timeout is None:
            deadline = loop.time() + self.settings.operation_timeout
        else:
            deadline = began + timeout

        def left() -> float:
            return max(0.0, deadline - loop.time())

        if self._creations:
            made, late = await asyncio.wait(self._creations, timeout=left())
            for creation in late:
                creation.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if made and client is not None:
                # The producers made meanwhile were handed their waiting records: let
                # them go out (they failed here, "closed before sending", when the
                # flush above had ended before the producer was made).
                await self.flush(left())
        self._sending_ended = True
        if client is not None:
            producers = {f"the producer of {t!r}": o.producer for t, o in self._outlets.items()}
            closed = await close_within(producers, left())
            await let_go(client, left(), abandoned=not closed)
            # Closing fails what the producers held; let those reports reach the loop so
            # that, once close returns, every record has had its report.
            for outlet in self._outlets.values():
                self._refill(outlet)  # (closed: fails the backlog)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(_REPORTS_AFTER_CLOSE, max(0.1, left()))):
                    await self._drained.wait()

    # -- producing --------------------------------------------------------------------

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
        """Queue one record; ``on_delivery`` runs on the event loop once it is persisted
        (``None``) or has failed (a :class:`BrokerError`). ``partition`` is ignored:
        Pulsar places records by key (pulsar-lite topics have no partitions).

        Keys become partition keys and headers properties (lossy for headers: see
        :mod:`connectors.pulsar.records`). Never blocks: beyond ``max_pending_messages``
        records of the topic in flight, it waits in the sink (see the module docstring).
        """
        if self._closed:
            raise BrokerError(f"{self!r} is closed")
        if self._client is None:
            raise BrokerError(f"{self!r} is not open; await open() first")
        partition_key, key_is_base64 = encode_key(key)
        message = build_message(value, partition_key, encode_properties(headers, key_is_base64))
        self._pending += 1
        self._drained.clear()
        outlet = self._outlets.get(topic)
        if outlet is not None:
            if outlet.in_queue < self._queue_limit and not outlet.backlog:
                self._send(outlet, message, on_delivery)
            else:
                outlet.backlog.append((message, on_delivery))
            return
        waiting = self._waiting.get(topic)
        if waiting is None:
            waiting = self._waiting[topic] = []
            task = asyncio.get_running_loop().create_task(self._create_producer(topic))
            self._creations.add(task)
            task.add_done_callback(self._creations.discard)
        waiting.append((message, on_delivery))

    async def _create_producer(self, topic: str) -> None:
        """Create ``topic``'s producer, trying again while the broker does not answer
        (see the module docstring), then send the records that waited for it."""
        assert self._client is not None
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.settings.send_timeout
        pause = FIRST_CREATE_RETRY
        while True:
            try:
                producer = await asyncio.to_thread(
                    self._client.create_producer, topic, self.settings
                )
                break
            except PulsarError as exc:
                error = broker_error(exc, f"creating a producer for {topic!r}")
            except asyncio.CancelledError:  # (by close, at its deadline)
                self._fail_waiting(
                    topic, BrokerError(f"{self!r} closed before {topic!r}'s producer was made")
                )
                raise
            left = give_up_at - loop.time()
            if not error.unreachable or left <= 0:
                self._fail_waiting(topic, error)
                return
            log.warning("%s; trying again in %.0f s", error, min(pause, left))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(pause, left)):
                    await self._closing.wait()
            if self._closed:
                self._fail_waiting(topic, error)
                return
            pause = min(pause * 2, LAST_CREATE_RETRY)
        outlet = self._outlets[topic] = _Outlet(topic, producer)
        outlet.backlog.extend(self._waiting.pop(topic, ()))
        self._refill(outlet)

    def _fail_waiting(self, topic: str, error: BrokerError) -> None:
        for _, on_delivery in self._waiting.pop(topic, ()):
            self._settle(on_delivery, error)

    def _send(
        self, outlet: _Outlet, message: Message, on_delivery: DeliveryCallback | None
    ) -> None:
        try:
            outlet.producer.send_async(message, functools.partial(self._sent, outlet, on_delivery))
        except PulsarError as exc:
            error = broker_error(exc, f"producing to {outlet.topic!r}")
            asyncio.get_running_loop().call_soon(self._settle, on_delivery, error)
            return
        outlet.in_queue += 1

    def _refill(self, outlet: _Outlet) -> None:
        """Hand ``outlet``'s producer what its backlog holds, as far as its queue has
        room; once the sink's producers are closing, fail the backlog instead."""
        backlog = outlet.backlog
        if self._sending_ended:
            error = BrokerError(f"{self!r} closed before sending to {outlet.topic!r}")
            while backlog:
                self._settle(backlog.popleft()[1], error)
            return
        while backlog and outlet.in_queue < self._queue_limit:
            self._send(outlet, *backlog.popleft())

    def _sent(
        self,
        outlet: _Outlet,
        on_delivery: DeliveryCallback | None,
        result: Result,
        message_id: MessageId,
    ) -> None:
        """Runs on a client thread, where an escaping exception would end the process."""
        topic = outlet.topic
        try:
            error = None if is_ok(result) else result_error(result.name, f"producing to {topic!r}")
            self._reports.append((outlet, on_delivery, error))
            # The append comes before the check and the loop clears the flag before it
            # drains, so a report is never left behind; at worst the loop drains twice.
            if not self._reports_scheduled:
                self._reports_scheduled = True
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._serve_reports)
        except Exception:  # the loop is closed: nobody is left to tell
            log.debug("a delivery report for %r arrived after its event loop closed", topic)

    def _serve_reports(self) -> None:
        self._reports_scheduled = False
        reports = self._reports
        freed: set[_Outlet] = set()
        while reports:
            outlet, on_delivery, error = reports.popleft()
            outlet.in_queue -= 1
            if outlet.backlog:
                freed.add(outlet)
            self._settle(on_delivery, error)
        for outlet in freed:
            self._refill(outlet)

    def _settle(self, on_delivery: DeliveryCallback | None, error: BrokerError | None) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._drained.set()
        if on_delivery is None:
            return
        try:
            on_delivery(error)
        except Exception:
            # The loop's handler would only log it too; catching it here keeps the other
            # reports of the same burst flowing.
            log.exception("an on_delivery callback raised")

    def poll(self) -> None:
        """Nothing to do: delivery reports are scheduled onto the event loop as they
        arrive and run as it turns."""

    async def wait_for_pending(self) -> None:
        """Never returns: nothing here needs :meth:`poll` (see there)."""
        await asyncio.Event().wait()

    async def flush(self, timeout: float) -> bool:
        """Send partly filled batches now and wait until every record's ``on_delivery``
        has run (True), or ``timeout`` seconds passed (False)."""
        for outlet in self._outlets.values():
            with contextlib.suppress(PulsarError):  # a closed producer has nothing to flush
                outlet.producer.flush_async(ignore_result)
        try:
            async with asyncio.timeout(timeout):
                await self._drained.wait()
        except TimeoutError:
            return False
        return True

    @property
    def pending(self) -> int:
        """Records produced whose ``on_delivery`` has not run yet."""
        return self._pending
