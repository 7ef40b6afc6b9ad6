"""Closing the Pulsar sink while a topic's producer is still being made, against the
real pulsar-lite broker: a producer made before the close's deadline sends the records
that waited for it, as ``close`` promises, rather than failing them.

The close's flush (``close_timeout``) ended first and marked the sink closed; the
producer, made a moment later and well within the deadline, was handed its records by
``_refill``, which failed them all ("closed before sending"): an insight or dead letter
that only needed the producer was replayed after the restart instead of delivered.
"""

from __future__ import annotations

import asyncio

import pulsar  # type: ignore[import-untyped]  # only to read back what the sink wrote

from connectors.embedded import EmbeddedPulsar
from connectors.pulsar import PulsarSink
from tests.support.waiting import wait_until


def read_back(service_url: str, topic: str, count: int) -> list[bytes]:
    """The payloads of the first ``count`` messages, with the plain client."""
    client = pulsar.Client(service_url, operation_timeout_seconds=5)
    try:
        consumer = client.subscribe(
            topic, "read-back", initial_position=pulsar.InitialPosition.Earliest
        )
        return [consumer.receive(5000).data() for _ in range(count)]
    finally:
        client.close()


async def test_a_producer_made_while_the_sink_closes_sends_the_records_that_waited() -> None:
    with EmbeddedPulsar() as broker:
        settings = {"close_timeout": 0.2, "connection_timeout": 30.0, "operation_timeout": 30.0}
        sink = PulsarSink(broker.service_url, settings=settings)
        await sink.open()
        sink.produce("known", None, b"before", None)  # the client is connected
        assert await sink.flush(10)
        reports: list[BaseException | None] = []
        broker.pause()
        try:
            sink.produce("late", None, b"waited", None, reports.append)
            sink.produce("late", None, b"waited too", None, reports.append)
            closing = asyncio.ensure_future(sink.close())
            await wait_until(lambda: sink._closed, 30, "the close's flush over")
            assert reports == [] and not closing.done()
        finally:
            broker.resume()
        await closing
        assert reports == [None, None]
        assert sink.pending == 0
        assert read_back(broker.service_url, "late", 2) == [b"waited", b"waited too"]
