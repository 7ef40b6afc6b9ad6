"""The service reading records other Pulsar clients wrote, as a separate process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from connectors.embedded import EmbeddedPulsar
from connectors.pulsar import PulsarSettings, PulsarSink
from integration.support import Instance, wait_until
from integration.test_kafka_service import readings
from tests.connectors.test_pulsar_foreign_records import produce_raw
from tests.connectors.test_pulsar_outage import Restartable
from tests.support.towers import pulsar_towers_config


def test_a_record_whose_key_is_not_utf8_does_not_stop_the_service(
    pulsar_broker: EmbeddedPulsar, start_instance: Callable[..., Instance]
) -> None:
    """A C++ or Go producer may write any bytes as a partition key; pulsar-client's
    Python surface raised UnicodeDecodeError reading it, and the instance stopped there,
    again at every restart."""
    app = "pulsar-foreign-key"
    url = pulsar_broker.service_url
    config = pulsar_towers_config(app, url)
    instance = start_instance(config)
    reading = {"device": "1", "tower": "t1", "temp": 50.0, "ts": 1}
    asyncio.run(
        asyncio.to_thread(
            produce_raw,
            url,
            f"{app}-readings",
            [(b"\xff\xfe", {}), (b"1", {})],
            orjson.dumps(reading),
        )
    )
    wait_until(lambda: instance.metric("swimstream_records_in_total") >= 2, 30, "records")
    wait_until(lambda: instance.lane("/device/1", "readings") == 1, 20, "the good record")
    assert instance.request("GET", "/healthz")[0] == 200


def test_a_source_topic_of_one_partition_is_routed(
    pulsar_broker: EmbeddedPulsar, start_instance: Callable[..., Instance]
) -> None:
    """A source of one partition by its own name (``t-partition-0``): its records came
    named ``t``, which no route took, and the instance stopped at the first."""
    app = "pulsar-one-partition"
    url = pulsar_broker.service_url
    topic = f"{app}-readings-partition-0"
    config = pulsar_towers_config(app, url, topic)
    instance = start_instance(config)
    reading = {"device": "1", "tower": "t1", "temp": 50.0, "ts": 1}
    asyncio.run(asyncio.to_thread(produce_raw, url, topic, [(b"1", {})], orjson.dumps(reading)))
    wait_until(lambda: instance.lane("/device/1", "readings") == 1, 30, "the record")
    assert instance.request("GET", "/healthz")[0] == 200


async def _produce_unbatched(url: str, topic: str, events: list[dict[str, Any]]) -> None:
    """Unbatched: pulsar-lite now and then delivers a fresh batch twice (see
    connectors.pulsar), which at-least-once allows and this test is not about."""
    sink = PulsarSink(url, settings=PulsarSettings(batching=False))
    await sink.open()
    for event in events:
        sink.produce(topic, str(event["device"]).encode(), orjson.dumps(event))
    assert await sink.flush(30)
    await sink.close()


def test_a_broker_restart_mid_run_loses_no_record_and_applies_none_twice(
    tmp_path: Path, start_instance: Callable[..., Instance]
) -> None:
    """The records committed in the last moments before the restart came again after
    it, their acknowledgements lost with the client's connection, and were applied
    twice (8 to 400 of the first 1,000, in 3 runs of 4)."""
    app = "pulsar-restart"
    broker = Restartable(tmp_path / "broker")
    try:
        url = broker.service_url
        config = pulsar_towers_config(app, url)
        instance = start_instance(config)
        events = readings(2_000, 20, seed=7)
        asyncio.run(_produce_unbatched(url, f"{app}-readings", events[:1_000]))
        wait_until(lambda: instance.metric("swimstream_records_in_total") >= 1_000, 60, "first")
        broker.stop()
        time.sleep(1.0)
        broker.start()
        asyncio.run(_produce_unbatched(url, f"{app}-readings", events[1_000:]))
        devices = sorted({event["device"] for event in events})
        expected = {d: sum(1 for e in events if e["device"] == d) for d in devices}
        for device in devices:
            wait_until(
                lambda d=device: instance.lane(f"/device/{d}", "readings") >= expected[d],
                60,
                device,
            )
        time.sleep(2.0)  # (copies, were any to come)
        assert {d: instance.lane(f"/device/{d}", "readings") for d in devices} == expected
        assert instance.metric("swimstream_records_in_total") == len(events)
    finally:
        broker.stop()
