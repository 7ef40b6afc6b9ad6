"""The e2e bench's input: readings of 10,000 devices, 1% of them hot, on 4 partitions.

Shared by the e2e bench (which produces them to the broker once per run) and the
pipeline bench (which holds them in memory).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import orjson
from confluent_kafka import KafkaError, Producer

from bench.peers.harness import Workload
from bench.report import progress
from connectors.embedded import EmbeddedKafka

PARTITIONS = 4
KEYS = 10_000
HOT_SHARE = 100  # one device in this many is hot
HOT_TEMPERATURE = 90.0


def readings(records: int) -> Iterator[tuple[bytes, bytes, bool]]:
    """The input records: (key, JSON value, hot) for reading n, device n mod KEYS."""
    for n in range(records):
        device = n % KEYS
        hot = device % HOT_SHARE == 7
        temp = 90.5 + (n % 95) / 10 if hot else 20.0 + (n * 7 % 690) / 10
        value = {"device": str(device), "tower": f"t{device // 100}", "temp": temp, "ts": n // KEYS}
        yield str(device).encode(), orjson.dumps(value), hot


def produce_workload(kafka: EmbeddedKafka, records: int) -> Workload:
    """Create the input topic and produce every reading to it, batched."""
    topic = kafka.create_topic(f"readings-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "partitioner": "murmur2_random",  # as the Java clients, and swimstream's default
        }
    )
    hot_readings = 0
    started = time.perf_counter()
    for n, (key, value, hot) in enumerate(readings(records), 1):
        hot_readings += hot
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 100_000 == 0:
            producer.poll(0)
            progress(f"produced {n:,} / {records:,} readings")
    remaining = producer.flush(60)
    if remaining or failures:
        raise SystemExit(f"producing failed: {remaining} undelivered, {failures[:3]}")
    elapsed = time.perf_counter() - started
    progress(f"topic {topic}: {records:,} readings in {elapsed:.1f} s ({records / elapsed:,.0f}/s)")
    return Workload(kafka.bootstrap, topic, records, hot_readings)
