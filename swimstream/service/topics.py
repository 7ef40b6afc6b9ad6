"""The topics a service reads and writes, per protocol, made sure of before it starts.

Every source topic, sink topic and the dead-letter topic is created when
``broker.create_topics`` says so, or else checked to exist (a clear error names the one
missing). Kafka's source topics must be co-partitioned, since shard ``p`` is partition
``p`` of each; with durable state the changelog topic, compacted, has one partition per
shard, and one with another count is refused rather than silently mis-sharded.
"""

from __future__ import annotations

from collections.abc import Mapping

from swimstream.config import AppConfig
from swimstream.errors import BrokerError
from swimstream.streams.connector import TopicAdmin
from swimstream.text import counted


def protocol_of(config: AppConfig, kind: str | None) -> str:
    """The protocol of a source or sink of ``kind`` (None: the broker's own)."""
    return kind or config.broker.protocol


def source_topics(config: AppConfig) -> dict[str, list[str]]:
    """The source topics per protocol, each once, in the config's order."""
    topics: dict[str, list[str]] = {}
    for source in config.sources:
        group = topics.setdefault(protocol_of(config, source.kind), [])
        if source.topic not in group:
            group.append(source.topic)
    return topics


async def ensure_topics(
    config: AppConfig, admins: Mapping[str, TopicAdmin | None]
) -> dict[str, int]:
    """Create or check every topic, through each protocol's admin (None: a protocol that
    creates topics on first use); returns the Kafka topics' partition counts."""
    wanted: dict[str, dict[str, int]] = {}
    partitions = config.broker.partitions
    sources_of = source_topics(config)
    for protocol, topics in sources_of.items():
        wanted.setdefault(protocol, {}).update({t: partitions for t in topics})
    for sink in config.sinks:
        wanted.setdefault(protocol_of(config, sink.kind), {})[sink.topic] = partitions
    wanted.setdefault(config.broker.protocol, {})[config.dead_letter] = partitions
    found: dict[str, int] = {}
    for protocol, partition_counts in wanted.items():
        admin = admins[protocol]
        if admin is None:
            continue
        counts = await admin.ensure_topics(partition_counts, create=config.broker.create_topics)
        sources = sources_of.get(protocol, [])
        if protocol == "kafka" and len({counts[t] for t in sources}) > 1:
            listing = ", ".join(f"{t} has {counts[t]}" for t in sources)
            raise BrokerError(
                "the source topics must be co-partitioned (the same number of partitions,"
                f" since shard p is partition p of each): {listing}"
            )
        if protocol == "kafka":
            found.update(counts)
    kafka = admins.get("kafka")
    if config.store.durable and kafka is not None:
        sources = sources_of.get("kafka", [])
        shards = found[sources[0]] if sources else config.broker.partitions
        changelog = config.changelog_topic
        counts = await kafka.ensure_topics(
            {changelog: shards}, create=config.broker.create_topics, compacted=[changelog]
        )
        if counts[changelog] != shards:
            raise BrokerError(
                f"the changelog topic {changelog} has "
                f"{counted(counts[changelog], 'partition')}; it needs {shards}, one per "
                "shard (partition of the source topics)"
            )
    return found
