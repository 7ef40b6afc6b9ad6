"""The Pulsar source across a broker restart, on a real pulsar-lite of its own.

A broker of its own: the test stops it and starts it again on the same port and data,
as an operator restarting the broker (or Apache Pulsar moving a topic to another
broker) does to a running instance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.embedded import EmbeddedPulsar, free_ports
from connectors.pulsar import (
    PULSAR_LITE_SETTINGS,
    PulsarRecord,
    PulsarSettings,
    PulsarSink,
    PulsarSource,
)
from swimstream.streams.connector import TopicPartition
from tests.support.waiting import wait_until


class Restartable:
    """A pulsar-lite that can be stopped and started again where it was."""

    def __init__(self, work_dir: Path) -> None:
        self.port = free_ports(1)[0]
        self.work_dir = work_dir
        self.broker = EmbeddedPulsar(port=self.port, work_dir=work_dir).start()

    @property
    def service_url(self) -> str:
        return self.broker.service_url

    def stop(self) -> None:
        self.broker.stop()

    def start(self) -> None:
        self.broker = EmbeddedPulsar(port=self.port, work_dir=self.work_dir).start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Restartable]:
    restartable = Restartable(tmp_path)
    yield restartable
    restartable.stop()


async def produce(service_url: str, topic: str, count: int) -> None:
    sink = PulsarSink(service_url, settings=PulsarSettings(batching=False))
    await sink.open()
    for number in range(count):
        sink.produce(topic, b"device-%d" % (number % 3), b"%d" % number)
    assert await sink.flush(10)
    await sink.close()


async def read_for(source: PulsarSource, seconds: float) -> list[int]:
    """The values of every record handed out within ``seconds``."""
    records: list[PulsarRecord] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        records += source.consume(1000)
        await source.wait_for_records(min(left, 0.2))
    return [int(record.value() or b"") for record in records]


async def read_by_the_next(broker: Restartable, topic: str) -> list[int]:
    """What a new source of the same subscription reads of ``topic`` within 2 s: what
    was not acknowledged, as the next instance would get it."""
    after = PulsarSource(broker.service_url, "twins", [topic], settings=PULSAR_LITE_SETTINGS)
    await after.open()
    try:
        return await read_for(after, 2.0)
    finally:
        await after.close()


async def read(source: PulsarSource, count: int) -> list[PulsarRecord]:
    records: list[PulsarRecord] = []
    deadline = time.monotonic() + 10
    while len(records) < count:
        assert time.monotonic() < deadline, f"read {len(records)} of {count}"
        records += source.consume(count - len(records))
        await source.wait_for_records(0.2)
    return records


async def test_records_committed_while_the_broker_restarts_are_not_handed_out_again(
    broker: Restartable,
) -> None:
    """The client drops the acknowledgements of a consumer that is not connected: the
    records committed while the broker restarted came again after it, to this source
    and to the next member, and their effects were applied twice."""
    topic = "outage"
    partition = TopicPartition(topic, 0)
    await produce(broker.service_url, topic, 20)
    source = PulsarSource(broker.service_url, "twins", [topic], settings=PULSAR_LITE_SETTINGS)
    await source.open()
    try:
        records = await read(source, 20)
        broker.stop()
        await wait_until(lambda: not source.connected, 20.0)
        source.commit({partition: 10})  # 0-9 done while the broker is away
        broker.start()
        await wait_until(lambda: source.connected, 30.0)
        assert await read_for(source, 2.0) == []  # 0-9 committed, 10-19 still held
        source.commit({partition: 20})
        assert source.repeats >= 10
        assert [int(r.value() or b"") for r in records] == list(range(20))
    finally:
        await source.close()
    assert await read_by_the_next(broker, topic) == []


async def test_records_committed_just_before_the_broker_stops_are_not_handed_out_again(
    broker: Restartable,
) -> None:
    """The client sends acknowledgements in groups, 100 ms apart, and drops the group
    it holds when the connection goes: records committed in the last moments before a
    broker restart came again after it (8 of 8, every time) and were applied twice."""
    topic = "outage-late"
    partition = TopicPartition(topic, 0)
    await produce(broker.service_url, topic, 20)
    source = PulsarSource(broker.service_url, "twins", [topic], settings=PULSAR_LITE_SETTINGS)
    await source.open()
    try:
        await read(source, 20)
        source.commit({partition: 8})
        broker.stop()
        assert await read_for(source, 1.0) == []  # as the service waits meanwhile
        broker.start()
        await wait_until(lambda: source.connected, 30.0)
        assert await read_for(source, 2.0) == []  # 0-7 committed, 8-19 still held
        source.commit({partition: 20})
    finally:
        await source.close()
    assert await read_by_the_next(broker, topic) == []


async def test_a_source_closed_during_the_outage_leaves_its_records_to_the_next(
    broker: Restartable,
) -> None:
    """What could not be acknowledged before the close is redelivered, never lost."""
    topic = "outage-close"
    await produce(broker.service_url, topic, 5)
    source = PulsarSource(broker.service_url, "twins", [topic], settings=PULSAR_LITE_SETTINGS)
    await source.open()
    await read(source, 5)
    broker.stop()
    await wait_until(lambda: not source.connected, 20.0)
    source.commit({TopicPartition(topic, 0): 5})
    await source.close(timeout=2.0)
    broker.start()
    assert sorted(await read_by_the_next(broker, topic)) == list(range(5))
    await asyncio.sleep(0)
