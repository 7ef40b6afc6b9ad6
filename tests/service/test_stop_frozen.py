"""A stop while a shard's restore waits for a broker that stopped answering: the drain
keeps to its deadline (``processing.drain_timeout``), as it does for the clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from connectors.embedded import EmbeddedKafka
from connectors.factory import open_connectors
from connectors.kafka.changelog import KafkaChangelogReader
from swimstream.config import AppConfig, parse_config
from swimstream.service import ProtocolClients, Service
from tests.service.test_lifecycle_lines import one_topic_app
from tests.support.waiting import wait_until


async def test_a_stop_during_a_hand_over_restore_on_a_frozen_broker_keeps_the_deadline(
    kafka_broker: EmbeddedKafka, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first assignment restores its shards from the changelog; with the broker
    frozen then, the stop waited for the restore's cancel, which waited out the reader's
    10 s request for the group's offsets, past a 2 s drain (and past the 10 s
    `docker stop` gives with the default 8 s one). The restore is left behind at the
    deadline instead."""
    app = "handover-frozen"
    kafka_broker.create_topic(f"{app}.readings", partitions=1)
    document = one_topic_app(kafka_broker.bootstrap, app)
    document["store"] = {"path": str(tmp_path)}
    document["processing"] = {"drain_timeout": "2s"}
    config = parse_config(document, {})
    made = 0

    @asynccontextmanager
    async def freezing(
        config: AppConfig, instance_id: str
    ) -> AsyncIterator[dict[str, ProtocolClients]]:
        async with open_connectors(config, instance_id) as clients:
            reader = clients["kafka"].changelog
            assert isinstance(reader, KafkaChangelogReader)
            make = reader._consumer

            def connected_then_frozen(group: str) -> Consumer:
                # The start makes two (its committed offsets and its read); the third is
                # the hand-over's, for the group's offsets: connected, then frozen, so
                # that request is in flight when the stop comes.
                nonlocal made
                made += 1
                consumer = make(group)
                if made == 3:
                    consumer.list_topics(timeout=10)
                    kafka_broker.pause()
                return consumer

            reader._consumer = connected_then_frozen  # type: ignore[method-assign]
            yield clients

    service = Service(config, freezing)
    try:
        with caplog.at_level(logging.INFO):
            running = asyncio.create_task(service.run())
            await wait_until(lambda: kafka_broker.is_paused, 60, what="the broker frozen")
            await asyncio.sleep(0.5)  # (its request sent by now, in the reader's thread)
            service.stop()
            await asyncio.wait_for(running, 60)
    finally:
        kafka_broker.resume()
    assert service.failure is None
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.handover"]
    assert "1 hand-over task left behind at the drain deadline, waiting for the broker" in lines
