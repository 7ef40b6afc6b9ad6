"""A Pulsar broker that goes silent as the source opens is waited for: the start goes
on once it answers again."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from connectors.embedded import EmbeddedPulsar, free_ports
from connectors.pulsar import PulsarSink
from swimstream.config import parse_config
from swimstream.service import Service
from tests.service.freezes import at_source_open, connectors_frozen_by
from tests.service.test_lifecycle_lines import service_lines
from tests.support.towers import TOWERS_AGENTS, alerts_sink
from tests.support.waiting import wait_until

READING = {"device": "d0", "tower": "t0", "temp": 20.0, "ts": 1}


async def test_a_pulsar_broker_silent_while_the_source_opens_is_waited_for(
    pulsar_broker: EmbeddedPulsar, caplog: pytest.LogCaptureFixture
) -> None:
    """Frozen as the source was made: its first contact (Pulsar's CONNECT) went
    unanswered, and the start failed at once (exit 1), not waiting as it does for a
    broker silent before the clients connected."""
    app = "silent-pulsar"
    web, mesh = free_ports(2)
    document = {
        "app": app,
        "broker": {"kind": "pulsar", "service_url": pulsar_broker.service_url, "partitions": 1},
        "agents": TOWERS_AGENTS,
        "sources": [{"topic": f"{app}.readings", "route": "/device/{key}", "lane": "reading"}],
        "sinks": [alerts_sink(app)],
        "store": {"durable": False},
        "web": {"listen": f"127.0.0.1:{web}"},
        "mesh": {"listen": f"127.0.0.1:{mesh}"},
        "processing": {"drain_timeout": "5s"},
    }
    config = parse_config(document, {})
    freezing = connectors_frozen_by(at_source_open(pulsar_broker, "pulsar"))
    service = Service(config, freezing)
    try:
        with caplog.at_level(logging.INFO):
            running = asyncio.create_task(service.run())
            await wait_until(
                lambda: (
                    running.done()
                    or any(
                        "), opening the pulsar source: " in line for line in service_lines(caplog)
                    )
                ),
                120,
                what="a line saying the start waits for the broker",
            )
            pulsar_broker.resume()
            assert not running.done(), running.exception()
            await wait_until(lambda: bool(service.started_at) or running.done(), 120)
            assert not running.done(), running.exception()
            sink = PulsarSink(pulsar_broker.service_url)
            await sink.open()
            sink.produce(f"{app}.readings", b"d0", json.dumps(READING).encode(), [], lambda _: None)
            assert await sink.flush(30)
            await sink.close()
            topic = f"{app}.readings"
            await wait_until(
                lambda: service.registry.value("records_in", topic=topic) >= 1,
                60,
                what="the record read",
            )
            service.stop()
            await asyncio.wait_for(running, 60)
    finally:
        pulsar_broker.resume()
        if not running.done():
            service.stop()
            await asyncio.wait_for(running, 60)
    assert service.failure is None
