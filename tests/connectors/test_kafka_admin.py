"""KafkaAdmin against the embedded broker: topics created with explicit configs, counts
reported as the broker has them, missing topics refused by name."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # not re-exported for type checkers

from connectors.embedded import EmbeddedKafka, TopicFactory
from connectors.kafka import KafkaAdmin, KafkaBrokerError
from swimstream.errors import BrokerError
from swimstream.streams.connector import TopicAdmin


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def topic_config(bootstrap: str, topic: str) -> dict[str, str | None]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(10)
    return {name: entry.value for name, entry in entries.items()}


async def test_creates_missing_topics_with_explicit_configs(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory
) -> None:
    existing = make_topic(partitions=2)
    events, changelog = fresh("events"), fresh("changelog")
    admin = KafkaAdmin(kafka_broker.bootstrap)

    counts = await admin.ensure_topics(
        {existing: 8, events: 3, changelog: 4}, create=True, compacted=[changelog]
    )

    assert counts == {existing: 2, events: 3, changelog: 4}  # the broker's count, not ours
    assert topic_config(kafka_broker.bootstrap, events) == {
        "cleanup.policy": "delete",
        "retention.ms": "604800000",
        "retention.bytes": "-1",
    }
    assert topic_config(kafka_broker.bootstrap, changelog)["cleanup.policy"] == "compact"
    assert await admin.partition_counts([events, "no-such-topic"]) == {events: 3}
    assert await admin.ensure_topics({events: 3}, create=True) == {events: 3}  # idempotent


async def test_refuses_a_state_topic_whose_configuration_deletes_records(
    kafka_broker: EmbeddedKafka,
) -> None:
    """A changelog made by hand as an ordinary topic (a week's retention) lost every
    agent unchanged for a week, seen only by a restore without the local store."""
    admin = KafkaAdmin(kafka_broker.bootstrap)
    week = {"retention.ms": "604800000"}  # Kafka's default, with cleanup.policy=delete
    by_hand = kafka_broker.create_topic(fresh("changelog"), 4, config=week)
    with pytest.raises(KafkaBrokerError) as raised:
        await admin.ensure_topics({by_hand: 4}, create=True, compacted=[by_hand])
    message = str(raised.value)
    assert f"topic {by_hand!r} on Kafka at {kafka_broker.bootstrap} holds state" in message
    assert "cleanup.policy=delete, retention.ms=604800000, retention.bytes=-1" in message
    assert f"--entity-name {by_hand} --add-config cleanup.policy=compact" in message

    for keeping in (
        kafka_broker.create_topic(fresh("changelog"), 4, compacted=True),
        kafka_broker.create_topic(fresh("changelog"), 4),  # delete, but no retention
    ):
        assert await admin.ensure_topics({keeping: 4}, create=True, compacted=[keeping]) == {
            keeping: 4
        }


async def test_refuses_missing_topics_by_name_when_not_creating(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory
) -> None:
    existing = make_topic(partitions=1)
    first, second = fresh("missing"), fresh("missing")
    admin = KafkaAdmin(kafka_broker.bootstrap)

    with pytest.raises(KafkaBrokerError) as raised:
        await admin.ensure_topics({existing: 1, first: 1, second: 1}, create=False)

    message = str(raised.value)
    assert repr(first) in message and repr(second) in message
    assert existing not in message
    assert kafka_broker.bootstrap in message
    assert await admin.partition_counts([first]) == {}


async def test_an_unreachable_broker_is_named() -> None:
    admin = KafkaAdmin("127.0.0.1:9", timeout=1)
    with pytest.raises(BrokerError, match=r"127\.0\.0\.1:9"):
        await admin.partition_counts(["anything"])


def test_it_is_a_topic_admin() -> None:
    admin: TopicAdmin = KafkaAdmin("127.0.0.1:9")  # mypy checks the protocol
    assert repr(admin) == "<KafkaAdmin at 127.0.0.1:9>"


async def test_close_drops_its_connection_so_tansu_exits_by_itself() -> None:
    """Tansu waits for open connections at SIGTERM: one left open gets it killed."""
    with EmbeddedKafka() as broker:
        admin = KafkaAdmin(broker.bootstrap)
        assert await admin.ensure_topics({"events": 1}, create=True) == {"events": 1}
        admin.close()
        admin.close()  # idempotent
        with pytest.raises(BrokerError, match="is closed"):
            await admin.partition_counts(["events"])
    assert broker.exit_code == 0
