"""The Pulsar sink against the real pulsar-lite broker: no mocks.

What the service relies on: every record gets exactly one delivery report, on the event
loop's thread, as ``None`` or a :class:`BrokerError` that says what went wrong;
``pending`` counts the reports still to come; ``flush`` waits for them; a full queue
slows ``produce`` down instead of failing records.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time

import pulsar  # type: ignore[import-untyped]  # only to read back what the sink wrote
import pytest

from connectors.embedded import EmbeddedPulsar, free_ports
from connectors.pulsar import PulsarSink
from connectors.pulsar.records import KEY_ENCODING_PROPERTY
from swimstream.errors import BrokerError
from swimstream.streams.connector import SinkConnector
from tests.support.closing import timed_closes


@pytest.fixture
def service_url(pulsar_broker: EmbeddedPulsar) -> str:
    return pulsar_broker.service_url


def read_back(service_url: str, topic: str, count: int) -> list[tuple[str, bytes]]:
    """(partition key, payload) of the first ``count`` messages, with the plain client."""
    client = pulsar.Client(service_url, operation_timeout_seconds=5)
    try:
        consumer = client.subscribe(
            topic, "read-back", initial_position=pulsar.InitialPosition.Earliest
        )
        messages = [consumer.receive(5000) for _ in range(count)]
        return [(message.partition_key(), message.data()) for message in messages]
    finally:
        client.close()


class Reports:
    """Delivery reports as they arrive, with the thread each ran on."""

    def __init__(self) -> None:
        self.errors: list[BaseException | None] = []
        self.threads: set[int] = set()

    def __call__(self, error: BaseException | None) -> None:
        self.errors.append(error)
        self.threads.add(threading.get_ident())


async def test_reports_run_on_the_loop_thread_and_pending_returns_to_zero(
    service_url: str, topic: str
) -> None:
    sink = PulsarSink(service_url)
    await sink.open()
    reports = Reports()
    for number in range(500):
        sink.produce(topic, b"device-%d" % (number % 7), b"%d" % number, None, reports)
    assert sink.pending == 500

    assert await sink.flush(10)

    assert sink.pending == 0
    assert reports.errors == [None] * 500
    assert reports.threads == {threading.get_ident()}
    await sink.close()
    written = await asyncio.to_thread(read_back, service_url, topic, 500)
    assert sorted(int(payload) for _, payload in written) == list(range(500))
    of_key: dict[str, list[int]] = {}
    for key, payload in written:
        of_key.setdefault(key, []).append(int(payload))
    assert sorted(of_key) == [f"device-{n}" for n in range(7)]
    assert all(numbers == sorted(numbers) for numbers in of_key.values())


async def test_headers_become_message_properties_and_a_binary_key_survives(
    service_url: str, topic: str
) -> None:
    """What a Pulsar consumer of the insights reads: the headers the service names the
    node and lane with, as properties; a key that is not text, base64 in the partition
    key, marked so."""
    sink = PulsarSink(service_url)
    await sink.open()
    headers = [("swimstream.node", b"/device/7"), ("swimstream.lane", b"status")]
    sink.produce(topic, b"7", b"{}", headers, None)
    sink.produce(topic, b"\xff\x00", b"{}", None, None)
    assert await sink.flush(10)
    await sink.close()

    def read() -> list[tuple[str, dict[str, str]]]:
        client = pulsar.Client(service_url, operation_timeout_seconds=5)
        try:
            consumer = client.subscribe(
                topic, "read-back", initial_position=pulsar.InitialPosition.Earliest
            )
            messages = [consumer.receive(5000) for _ in range(2)]
            return [(m.partition_key(), m.properties()) for m in messages]
        finally:
            client.close()

    (key, properties), (binary_key, binary_properties) = await asyncio.to_thread(read)
    assert (key, properties) == ("7", {"swimstream.node": "/device/7", "swimstream.lane": "status"})
    assert base64.b64decode(binary_key) == b"\xff\x00"
    assert binary_properties == {KEY_ENCODING_PROPERTY: "base64"}


async def test_records_wait_for_their_topics_producer_and_keep_their_order(
    service_url: str, topic: str
) -> None:
    sink = PulsarSink(service_url)
    await sink.open()
    topics = [f"{topic}-a", f"{topic}-b"]
    reports = Reports()
    for number in range(50):  # all produced before either producer exists
        for name in topics:
            sink.produce(name, None, b"%d" % number, None, reports)
    assert await sink.flush(10)
    await sink.close()
    assert reports.errors == [None] * 100
    for name in topics:
        written = await asyncio.to_thread(read_back, service_url, name, 50)
        assert [int(payload) for _, payload in written] == list(range(50))


async def test_a_full_queue_slows_produce_down_instead_of_failing(
    service_url: str, topic: str
) -> None:
    sink = PulsarSink(service_url, settings={"max_pending_messages": 5, "batching": False})
    await sink.open()
    sink.produce(topic, None, b"first", None)  # the producer exists once this is delivered
    assert await sink.flush(10)
    reports = Reports()
    for number in range(300):
        sink.produce(topic, None, b"%d" % number, None, reports)
    assert await sink.flush(10)
    await sink.close()
    assert reports.errors == [None] * 300
    payloads = [payload for _, payload in read_back(service_url, topic, 301)]
    assert payloads == [b"first", *(b"%d" % number for number in range(300))]


async def test_a_full_queue_while_the_broker_is_frozen_does_not_block_the_loop() -> None:
    """The producer blocks the thread that sends into its full queue, which was the
    event loop: an agent publishing many insights per record to a frozen broker held
    the whole instance (``/healthz`` unanswered for a minute) until the records in the
    queue timed out, and those insights failed. Records beyond the queue now wait in
    the sink, and the loop goes on: here it resumes the broker, and all get through."""
    with EmbeddedPulsar() as broker:
        settings = {"max_pending_messages": 5, "batching": False, "send_timeout": 5.0}
        sink = PulsarSink(broker.service_url, settings=settings)
        await sink.open()
        sink.produce("frozen", None, b"first", None)  # the producer exists once delivered
        assert await sink.flush(10)
        reports = Reports()
        broker.pause()
        try:
            for number in range(20):  # four queues' worth
                sink.produce("frozen", None, b"%d" % number, None, reports)
            assert sink.pending == 20
        finally:
            broker.resume()  # (blocked in produce, the loop got here after the timeouts)

        assert await sink.flush(20)

        assert reports.errors == [None] * 20
        await sink.close()
        payloads = [payload for _, payload in read_back(broker.service_url, "frozen", 21)]
        assert payloads == [b"first", *(b"%d" % number for number in range(20))]


async def test_a_producer_the_broker_refuses_fails_its_records_with_the_reason(
    service_url: str,
) -> None:
    sink = PulsarSink(service_url)
    await sink.open()
    reports = Reports()
    sink.produce("persistent://no-namespace", b"k", b"v", None, reports)
    sink.produce("persistent://no-namespace", b"k", b"w", None, reports)

    assert await sink.flush(10)

    assert sink.pending == 0
    assert len(reports.errors) == 2
    for error in reports.errors:
        assert isinstance(error, BrokerError)
        assert "creating a producer for 'persistent://no-namespace'" in str(error)
        assert "InvalidTopicName" in str(error)
    await sink.close()


async def test_records_the_broker_never_acknowledges_fail_with_a_broker_error() -> None:
    with EmbeddedPulsar() as broker:
        sink = PulsarSink(broker.service_url, settings={"send_timeout": 0.5})
        await sink.open()
        sink.produce("events", None, b"before", None)
        assert await sink.flush(10)
        broker.stop()
        reports = Reports()
        sink.produce("events", None, b"lost", None, reports)
        sink.produce("events", None, b"lost too", None, reports)

        assert await sink.flush(10)

        assert len(reports.errors) == 2
        for error in reports.errors:
            assert isinstance(error, BrokerError)
            assert "producing to 'events' failed (Timeout)" in str(error)
        await sink.close()


async def test_a_producer_made_while_the_broker_does_not_answer_is_tried_again() -> None:
    """A topic's producer is made on its first record (its first dead letter, a rare
    alert). A broker frozen just then failed the records waiting for it after one
    connection timeout, and that stopped the service; they now wait while the broker
    does not answer, and go out once it does."""
    with EmbeddedPulsar() as broker:
        sink = PulsarSink(broker.service_url, settings={"connection_timeout": 1.0})
        await sink.open()
        reports = Reports()
        broker.pause()
        try:
            sink.produce("first-use", None, b"waits", None, reports)
            await asyncio.sleep(3.5)  # three connection timeouts
            assert reports.errors == []
        finally:
            broker.resume()

        assert await sink.flush(20)

        assert reports.errors == [None]
        await sink.close()
        assert [payload for _, payload in read_back(broker.service_url, "first-use", 1)] == [
            b"waits"
        ]


async def test_a_producer_the_broker_never_answers_for_fails_its_records_at_send_timeout() -> None:
    with EmbeddedPulsar() as broker:
        settings = {"connection_timeout": 0.5, "send_timeout": 2.0}
        sink = PulsarSink(broker.service_url, settings=settings)
        await sink.open()
        reports = Reports()
        broker.pause()
        try:
            began = time.monotonic()
            sink.produce("never", None, b"lost", None, reports)

            assert await sink.flush(10)

            assert 2.0 <= time.monotonic() - began < 4.0
        finally:
            broker.resume()
        assert len(reports.errors) == 1
        assert isinstance(reports.errors[0], BrokerError)
        assert "creating a producer for 'never'" in str(reports.errors[0])
        assert reports.errors[0].unreachable
        await sink.close()


async def test_a_close_while_the_broker_does_not_answer_keeps_to_its_bounds() -> None:
    """The producers close at once, not one after another each waiting the operation
    timeout for the broker; with a ``timeout`` (the drain's time left) the flush and the
    closing together keep to it. Every record in flight still gets its report."""
    with EmbeddedPulsar() as broker:
        settings = {"close_timeout": 1.0, "operation_timeout": 2.0}
        topics = ["first", "second", "third"]
        sinks = [PulsarSink(broker.service_url, settings=settings) for _ in range(2)]
        for sink in sinks:
            await sink.open()
            for topic in topics:
                sink.produce(topic, None, b"before", None)
            assert await sink.flush(10)
        broker.pause()
        try:
            reports = Reports()
            for sink in sinks:
                for topic in topics:
                    sink.produce(topic, None, b"stranded", None, reports)
            # (unbounded: the flush's 1 s, then the closing's 2 s at most)
            took, took_bounded = await timed_closes(sinks[0], sinks[1], 0.5)
        finally:
            broker.resume()
        assert took < 6.0
        assert took_bounded < 2.0
        assert len(reports.errors) == 6
        assert all(isinstance(error, BrokerError) for error in reports.errors)


async def test_close_reports_every_record_it_could_not_deliver() -> None:
    with EmbeddedPulsar() as broker:
        sink = PulsarSink(broker.service_url, settings={"close_timeout": 0.2})
        await sink.open()
        sink.produce("events", None, b"before", None)
        assert await sink.flush(10)
        broker.stop()
        reports = Reports()
        sink.produce("events", None, b"stranded", None, reports)

        await sink.close()

        assert len(reports.errors) == 1
        assert isinstance(reports.errors[0], BrokerError)
        assert sink.pending == 0


async def test_close_reports_the_records_held_back_from_a_full_queue_too() -> None:
    with EmbeddedPulsar() as broker:
        settings = {"max_pending_messages": 5, "batching": False, "close_timeout": 0.2}
        sink = PulsarSink(broker.service_url, settings=settings)
        await sink.open()
        sink.produce("events", None, b"before", None)
        assert await sink.flush(10)
        broker.pause()
        try:
            reports = Reports()
            for number in range(12):
                sink.produce("events", None, b"%d" % number, None, reports)

            await sink.close(1.0)
        finally:
            broker.resume()

        assert len(reports.errors) == 12
        assert all(isinstance(error, BrokerError) for error in reports.errors)
        assert sink.pending == 0


async def test_a_missing_broker_is_reported_at_once() -> None:
    (port,) = free_ports(1)
    sink = PulsarSink(f"pulsar://127.0.0.1:{port}")
    began = time.monotonic()
    with pytest.raises(BrokerError, match="cannot reach the Pulsar broker") as raised:
        await sink.open()
    assert time.monotonic() - began < 1.0
    assert raised.value.unreachable  # the service waits for it at start


async def test_a_sink_is_used_between_open_and_close_only(service_url: str) -> None:
    sink: SinkConnector = PulsarSink(service_url)
    with pytest.raises(BrokerError, match="not open"):
        sink.produce("events", None, b"v")
    await sink.open()
    sink.poll()  # nothing to serve: reports run on the loop
    await sink.close()
    with pytest.raises(BrokerError, match="is closed"):
        sink.produce("events", None, b"v")
    await sink.close()  # idempotent
