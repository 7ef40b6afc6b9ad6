"""A stop while a shard's restore waits for a broker that stopped answering: the drain
keeps to its deadline (``processing.drain_timeout``), as it does for the clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from connectors.embedded import EmbeddedKafka
from connectors.factory import open_connectors
from swimstream.config import AppConfig, parse_config
from swimstream.service import ProtocolClients, Service
from swimstream.streams import InboundRecord
from tests.service.test_lifecycle_lines import one_topic_app
from tests.support.waiting import wait_until


async def test_a_stop_during_a_hand_over_restore_on_a_frozen_broker_keeps_the_deadline(
    kafka_broker: EmbeddedKafka, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first assignment restores its shards from the changelog; with the broker
    frozen then, the stop waited for the restore's cancel, which waited out the reader's
    10 s metadata request, past a 2 s drain (and past the 10 s `docker stop` gives with
    the default 8 s one). The restore is left behind at the deadline instead."""
    app = "handover-frozen"
    kafka_broker.create_topic(f"{app}.readings", partitions=1)
    document = one_topic_app(kafka_broker.bootstrap, app)
    document["store"] = {"path": str(tmp_path)}
    document["processing"] = {"drain_timeout": "2s"}
    config = parse_config(document, {})
    reads = 0

    @asynccontextmanager
    async def freezing(
        config: AppConfig, instance_id: str
    ) -> AsyncIterator[dict[str, ProtocolClients]]:
        async with open_connectors(config, instance_id) as clients:
            reader = clients["kafka"].changelog
            assert reader is not None
            read = reader.read

            async def frozen_second_read(
                topic: str,
                start: Mapping[int, int],
                on_records: Callable[[Sequence[InboundRecord]], None],
                progress: Callable[[int, int], None] | None = None,
            ) -> dict[int, int]:
                nonlocal reads
                reads += 1
                if reads == 2:  # (the first is the start's; this one, the hand-over's)
                    kafka_broker.pause()
                return await read(topic, start, on_records, progress)

            reader.read = frozen_second_read  # type: ignore[method-assign]
            yield clients

    service = Service(config, freezing)
    try:
        with caplog.at_level(logging.INFO):
            running = asyncio.create_task(service.run())
            await wait_until(lambda: kafka_broker.is_paused, 60, what="the broker frozen")
            service.stop()
            await asyncio.wait_for(running, 60)
    finally:
        kafka_broker.resume()
    assert service.failure is None
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.handover"]
    assert "1 hand-over task left behind at the drain deadline, waiting for the broker" in lines
