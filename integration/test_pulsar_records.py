"""The service reading records other Pulsar clients wrote, as a separate process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from connectors.embedded import EmbeddedPulsar
from integration.support import Instance, wait_until
from tests.connectors.test_pulsar_foreign_records import produce_raw
from tests.support.towers import TOWERS_AGENTS


def test_a_record_whose_key_is_not_utf8_does_not_stop_the_service(
    pulsar_broker: EmbeddedPulsar, start_instance: Callable[..., Instance]
) -> None:
    """A C++ or Go producer may write any bytes as a partition key; pulsar-client's
    Python surface raised UnicodeDecodeError reading it, and the instance stopped there,
    again at every restart."""
    app = "pulsar-foreign-key"
    url = pulsar_broker.service_url
    config = {
        "app": app,
        "broker": {"kind": "pulsar", "service_url": url, "subscription_type": "shared"},
        "agents": TOWERS_AGENTS,
        "sources": [{"topic": f"{app}-readings", "route": "/device/{key}", "lane": "reading"}],
        "sinks": [{"publish": "alerts", "topic": f"{app}-alerts"}],
        "processing": "at-least-once",
    }
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
    config = {
        "app": app,
        "broker": {"kind": "pulsar", "service_url": url, "subscription_type": "shared"},
        "agents": TOWERS_AGENTS,
        "sources": [{"topic": topic, "route": "/device/{key}", "lane": "reading"}],
        "sinks": [{"publish": "alerts", "topic": f"{app}-alerts"}],
        "processing": "at-least-once",
    }
    instance = start_instance(config)
    reading = {"device": "1", "tower": "t1", "temp": 50.0, "ts": 1}
    asyncio.run(asyncio.to_thread(produce_raw, url, topic, [(b"1", {})], orjson.dumps(reading)))
    wait_until(lambda: instance.lane("/device/1", "readings") == 1, 30, "the record")
    assert instance.request("GET", "/healthz")[0] == 200
