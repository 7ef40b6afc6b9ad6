"""The towers simulator places each device's readings where the app shards its agent."""

from __future__ import annotations

from pathlib import Path

from connectors.embedded import EmbeddedKafka, TopicFactory
from examples.towers import simulator
from swimstream.config import load_config
from swimstream.routing.shard import shard_for
from tests.support.kafka import read_topic

CONFIG = Path(__file__).resolve().parents[2] / "config" / "towers.yaml"


def test_readings_land_on_the_partition_the_app_shards_their_device_to(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory
) -> None:
    """Keyed records reach the instance that owns their agent only when the producer and
    the app hash keys alike; the example's config leaves the partitioner at its default."""
    topic = make_topic(partitions=4)
    argv = ["--bootstrap", kafka_broker.bootstrap, "--topic", topic]
    assert simulator.main([*argv, "--devices", "300", "--rate", "3000", "--duration", "1"]) == 0
    partitioner = load_config(CONFIG, {}).broker.partitioner
    records = read_topic(kafka_broker.bootstrap, topic)
    assert len({r.key() for r in records}) > 100
    placed = [(r.partition(), shard_for(r.key() or b"", 4, partitioner)) for r in records]
    assert [p for p in placed if p[0] != p[1]] == []
