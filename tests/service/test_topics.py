"""The topics a service needs, made sure of before it starts, against the embedded
broker: created as configured, and refused with a reason that names them when their
partitions cannot be sharded (source topics not co-partitioned, a changelog of
another count)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka
from connectors.kafka import KafkaAdmin
from swimstream.config import AppConfig, parse_config
from swimstream.errors import BrokerError
from swimstream.service.topics import ensure_topics, source_topics
from tests.service.test_lifecycle_lines import one_topic_app


def app_config(
    kafka: EmbeddedKafka, sources: list[str], tmp_path: Path | None = None, **broker: Any
) -> AppConfig:
    """An app reading ``sources`` (durable state under ``tmp_path`` when given)."""
    app = f"topics-{uuid.uuid4().hex[:8]}"
    document = one_topic_app(kafka.bootstrap, app)
    document["broker"].update(broker)
    document["sources"] = [
        {"topic": topic, "route": "/device/{key}", "lane": "reading"} for topic in sources
    ]
    if tmp_path is not None:
        document["store"] = {"durable": True, "path": str(tmp_path)}
    return parse_config(document, {})


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


async def test_creates_every_topic_and_a_changelog_of_one_partition_a_shard(
    kafka_broker: EmbeddedKafka, tmp_path: Path
) -> None:
    """Sources that exist keep their count; what is missing is made with
    ``broker.partitions``; the changelog gets the sources' count, one per shard."""
    readings = kafka_broker.create_topic(fresh("readings"), 3)
    config = app_config(kafka_broker, [readings], tmp_path, partitions=2)
    admin = KafkaAdmin(kafka_broker.bootstrap)

    counts = await ensure_topics(config, {"kafka": admin})

    alerts = config.sinks[0].topic
    assert source_topics(config) == {"kafka": [readings]}
    assert counts == {readings: 3, alerts: 2, config.dead_letter: 2}
    assert await admin.partition_counts([config.changelog_topic]) == {config.changelog_topic: 3}


async def test_refuses_source_topics_that_are_not_co_partitioned(
    kafka_broker: EmbeddedKafka,
) -> None:
    """Shard p is partition p of every source topic: topics of two counts cannot be
    sharded, and the error names each with its count."""
    two, four = fresh("two"), fresh("four")
    kafka_broker.create_topic(two, 2)
    kafka_broker.create_topic(four, 4)
    config = app_config(kafka_broker, [two, four])

    with pytest.raises(BrokerError) as raised:
        await ensure_topics(config, {"kafka": KafkaAdmin(kafka_broker.bootstrap)})

    message = str(raised.value)
    assert "must be co-partitioned" in message
    assert f"{two} has 2, {four} has 4" in message


async def test_refuses_a_changelog_of_another_partition_count(
    kafka_broker: EmbeddedKafka, tmp_path: Path
) -> None:
    """A changelog made with two partitions for four shards would put two shards' state
    in one partition: refused, with both counts."""
    readings = kafka_broker.create_topic(fresh("readings"), 4)
    config = app_config(kafka_broker, [readings], tmp_path)
    kafka_broker.create_topic(config.changelog_topic, 2, compacted=True)

    with pytest.raises(BrokerError) as raised:
        await ensure_topics(config, {"kafka": KafkaAdmin(kafka_broker.bootstrap)})

    assert str(raised.value) == (
        f"the changelog topic {config.changelog_topic} has 2 partitions; it needs 4, one per "
        "shard (partition of the source topics)"
    )
