"""The service against a real Pulsar-protocol broker (pulsar-lite), as a separate process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from connectors.embedded import EmbeddedPulsar
from connectors.pulsar import PULSAR_LITE_SETTINGS, PulsarSink, PulsarSource
from examples.towers import HOT_TEMPERATURE
from integration.support import Instance, wait_until
from integration.test_kafka_service import readings


async def _produce(url: str, topic: str, events: list[dict[str, Any]]) -> None:
    sink = PulsarSink(url, settings=PULSAR_LITE_SETTINGS)
    await sink.open()
    for event in events:
        sink.produce(topic, event["device"].encode(), orjson.dumps(event))
    assert await sink.flush(30)
    await sink.close()


async def _read(url: str, topic: str, expected: int) -> list[dict[str, Any]]:
    source = PulsarSource(url, "test-reader", [topic], settings=PULSAR_LITE_SETTINGS)
    await source.open()
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 30
    while len(seen) < expected and asyncio.get_running_loop().time() < deadline:
        batch = source.consume(1000)
        seen += [orjson.loads(record.value() or b"null") for record in batch]
        if not batch:
            await source.wait_for_records(0.2)
    await source.close()
    return seen


def test_pulsar_in_insights_out_and_every_agent_matches(
    pulsar_broker: EmbeddedPulsar, start_instance: Callable[..., Instance]
) -> None:
    app = "e2e-pulsar"
    url = pulsar_broker.service_url
    events = readings(4_000, 200, seed=5)
    config = {
        "app": app,
        # pulsar-lite delivers right only on Shared: its Key_Shared (the default) now and
        # then delivers a message twice (4,001 records in for 4,000 on the topic, 2 runs in 25).
        "broker": {"kind": "pulsar", "service_url": url, "subscription_type": "shared"},
        "agents": {
            "device": {"class": "examples.towers.app:Device", "route": "/device/:id"},
            "tower": {"class": "examples.towers.app:Tower", "route": "/tower/:id"},
            "world": {"class": "examples.towers.app:World", "route": "/world"},
        },
        "sources": [{"topic": f"{app}-readings", "route": "/device/{key}", "lane": "reading"}],
        "sinks": [{"publish": "alerts", "topic": f"{app}-alerts"}],
        "processing": "at-least-once",
    }
    instance = start_instance(config, ready=False)
    asyncio.run(_produce(url, f"{app}-readings", events))
    instance.wait_ready()
    wait_until(lambda: instance.metric("swimstream_records_in_total") >= len(events), 60, "records")
    latest = {e["device"]: e for e in events}
    for device, event in latest.items():
        expected = {"temp": event["temp"], "tower": event["tower"], "ts": event["ts"]}
        wait_until(
            lambda d=device, e=expected: instance.lane(f"/device/{d}", "status") == e, 20, device
        )
        assert instance.lane(f"/device/{device}", "readings") == sum(
            1 for e in events if e["device"] == device
        )
    hot = sorted((e["device"], e["temp"]) for e in events if e["temp"] > HOT_TEMPERATURE)
    alerts = asyncio.run(_read(url, f"{app}-alerts", len(hot)))
    assert sorted((a["device"], a["temp"]) for a in alerts) == hot
