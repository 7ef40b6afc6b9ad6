"""Records other Pulsar clients write, read by the Pulsar source on the real pulsar-lite.

pulsar-client's Python surface takes text, but its C++ core (and a Go or C++ producer)
writes any bytes as a partition key, a topic name or a property. What such a producer
can write, the service must read without stopping: a record it cannot read cannot even
be dead-lettered, and the restart reads it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import _pulsar  # type: ignore[import-not-found]  # the C++ core, which takes bytes
import pulsar  # type: ignore[import-untyped]
import pytest

from connectors.embedded import EmbeddedPulsar
from connectors.pulsar import PULSAR_LITE_SETTINGS, PulsarRecord, PulsarSink, PulsarSource
from swimstream.errors import RecordDecodeError
from swimstream.metrics import MetricsRegistry
from swimstream.streams.connector import TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.testing import MemorySink


@pytest.fixture
def service_url(pulsar_broker: EmbeddedPulsar) -> str:
    return pulsar_broker.service_url


def produce_raw(
    service_url: str,
    topic: str,
    messages: list[tuple[bytes | None, dict[str | bytes, bytes]]],
    payload: bytes | None = None,
) -> None:
    """Send ``(partition key, properties)`` messages as bytes, the way a C++ producer
    can: pybind11 passes ``bytes`` to the core's ``std::string`` unchecked. Each carries
    ``payload``, or ``{"n": <its number>}``."""
    client = pulsar.Client(service_url, operation_timeout_seconds=5)
    try:
        producer = client.create_producer(topic, batching_enabled=False)
        for number, (key, properties) in enumerate(messages):
            builder = _pulsar.MessageBuilder()
            builder.content(b'{"n": %d}' % number if payload is None else payload)
            if key is not None:
                builder.partition_key(key)
            if properties:
                builder.properties(properties)
            producer._producer.send(builder.build())
    finally:
        client.close()


@pytest.fixture
async def source(service_url: str, topic: str) -> AsyncIterator[PulsarSource]:
    opened = PulsarSource(service_url, "twins", [topic], settings=PULSAR_LITE_SETTINGS)
    await opened.open()
    yield opened
    await opened.close()


async def read(source: PulsarSource, count: int, timeout: float = 10.0) -> list[PulsarRecord]:
    records: list[PulsarRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        assert time.monotonic() < deadline, f"read {len(records)} of {count} records"
        batch = source.consume(count - len(records))
        records.extend(batch)
        if not batch:
            await source.wait_for_records(0.2)
    return records


async def test_a_key_that_is_not_utf8_is_read_as_its_bytes(
    service_url: str, topic: str, source: PulsarSource
) -> None:
    await asyncio.to_thread(
        produce_raw,
        service_url,
        topic,
        [(b"\xff\xfe device", {}), (b"caf\xc3\xa9", {}), (b"\x80", {"trace": b"abc"})],
    )
    records = await read(source, 3)
    assert [record.key() for record in records] == [b"\xff\xfe device", "café".encode(), b"\x80"]
    assert records[2].headers() == [("trace", b"abc")]


async def test_properties_that_are_not_utf8_leave_the_key_readable_and_dead_letter(
    service_url: str, topic: str, source: PulsarSource
) -> None:
    """The client decodes properties as one map, so one bad value hides them all; the
    key stays readable, and the headers say why they cannot be read."""
    await asyncio.to_thread(
        produce_raw,
        service_url,
        topic,
        [(b"device-1", {"trace": b"\xffabc", "kind": b"reading"}), (b"\xfe", {b"\xff": b"x"})],
    )
    records = await read(source, 2)
    assert [record.key() for record in records] == [b"device-1", b"\xfe"]
    for record in records:
        with pytest.raises(RecordDecodeError, match="not UTF-8"):
            record.headers()
    sink = MemorySink()
    dead = DeadLetters(sink, "app.dead-letter", MetricsRegistry())  # type: ignore[arg-type]
    for record in records:
        dead.send(record, RecordDecodeError("not routable"))
    assert [letter.key for letter in sink.records] == [b"device-1", b"\xfe"]
    assert all(
        "swimstream.headers.unreadable" in letter.headers
        and "swimstream.origin.id" in letter.headers
        for letter in sink.records
    )


async def test_a_key_that_is_not_utf8_round_trips_through_the_sink(
    service_url: str, topic: str, source: PulsarSource
) -> None:
    """What the source read from a foreign producer, the sink writes back the same
    (base64-marked), so a dead letter replayed keeps its key."""
    await asyncio.to_thread(produce_raw, service_url, topic, [(b"\xff\xfe", {})])
    (record,) = await read(source, 1)
    sink = PulsarSink(service_url, settings=PULSAR_LITE_SETTINGS)
    await sink.open()
    reports: list[BaseException | None] = []
    sink.produce(topic, record.key(), record.value(), None, reports.append)
    assert await sink.flush(10)
    await sink.close()
    assert reports == [None]
    (again,) = await read(source, 1)
    assert again.key() == b"\xff\xfe"


async def test_a_topic_configured_as_one_partition_reports_its_configured_name(
    service_url: str, topic: str
) -> None:
    """Pulsar lets a consumer read one partition of a partitioned topic by its own name,
    ``t-partition-1``; its records reported ``t``, a topic the service had no route for,
    and the instance stopped at the first one."""
    one_partition = f"{topic}-partition-1"
    await asyncio.to_thread(produce_raw, service_url, one_partition, [(b"device-1", {})])
    source = PulsarSource(service_url, "twins", [one_partition], settings=PULSAR_LITE_SETTINGS)
    await source.open()
    try:
        (record,) = await read(source, 1)
        assert (record.topic(), record.partition()) == (one_partition, 1)
        assert source.assignment() == {TopicPartition(one_partition, 1)}
    finally:
        await source.close()
