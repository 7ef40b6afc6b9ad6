"""The ``broker`` part: which broker the sources and sinks talk to, and how.

Kafka is the default and the engine swimstream leans on (consumer group, transactions,
changelog topics). Pulsar serves the same sources and sinks without transactions. The
embedded broker starts a Kafka- or Pulsar-compatible broker inside the service for
demos and tests. A source or sink may name the other protocol with its own ``kind``; the
broker part then needs that protocol's address too.

``settings`` passes client settings straight to confluent-kafka (to each client the ones
that apply to its type), except the few that swimstream must own for its guarantees to
hold (the consumer group, transactions, offset commits): setting those here would
silently break them, so they are refused (:mod:`swimstream.config.client_settings` lists
them).

``pulsar`` holds the Pulsar clients' authentication and TLS settings
(:mod:`swimstream.config.pulsar_client`); its TLS keys need a ``pulsar+ssl://`` service
URL, which the checks here compare (but for the CA file with OAuth 2.0: see the field).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from swimstream.config.client_settings import ClientSettings
from swimstream.config.problems import format_path
from swimstream.config.pulsar_client import PulsarClientConfig, is_tls_url
from swimstream.config.values import (
    DEFAULT_DOC,
    Boolean,
    BootstrapServers,
    FrozenModel,
    Integer,
    PulsarUrl,
)
from swimstream.errors import ConfigError
from swimstream.routing import Partitioner

Protocol = Literal["kafka", "pulsar"]

RECORD_MARGIN = 64 * 1024
"""Bytes of a sink's record size limit kept for keys, headers and state encoding: a
record from a source larger than the limit less this is dead-lettered at the door."""
SMALLEST_RECORD_LIMIT = 2 * RECORD_MARGIN
"""The least ``message.max.bytes`` taken: below the margin every record would be too
large, and just above it nearly every one."""
SubscriptionType = Literal["key_shared", "shared", "failover", "exclusive"]


class BrokerConfig(FrozenModel):
    """The broker the sources and sinks talk to."""

    kind: Literal["kafka", "pulsar", "embedded"] = Field(
        default="kafka",
        description=(
            "`kafka`, `pulsar`, or `embedded` to start a local broker inside the service "
            "(for demos and tests; it speaks `embedded_kind`). The embedded broker listens on "
            "a free loopback port, named in the log line `embedded Kafka (Tansu) ready on "
            "127.0.0.1:PORT` (its Kafka ignores `bootstrap`), and keeps nothing across runs: "
            "topics, offsets and state start empty at every run (a store an earlier run left "
            "is moved to `<file>.previous`), so to see state survive a restart run a broker "
            "that outlives the service (`kind: kafka`). Its group joins are slow for a "
            "consumer with the default session (45 s: the broker holds a join for half of "
            "it): a script reading its output topics should `assign()` partitions or set "
            "`session.timeout.ms: 6000`. It acknowledges records produced to a topic deleted "
            "while it runs, which go nowhere: delete no sink topic under a running instance."
        ),
    )
    bootstrap: BootstrapServers | None = Field(
        default=None,
        description=(
            "Kafka bootstrap servers. Required when `kind` is `kafka`, or when a source or "
            "sink of kind `kafka` is used with another broker."
        ),
    )
    service_url: PulsarUrl | None = Field(
        default=None,
        description=(
            "Pulsar service URL. Required when `kind` is `pulsar`, or when a source or "
            "sink of kind `pulsar` is used with another broker."
        ),
    )
    embedded_kind: Protocol = Field(
        default="kafka",
        description="The protocol the embedded broker speaks; ignored unless `kind: embedded`.",
    )
    settings: ClientSettings = Field(
        default_factory=dict,
        description=(
            "Extra confluent-kafka client settings (`linger.ms`, `security.protocol`, "
            "`sasl.*`, ...). Each client gets the ones that apply to it: a setting librdkafka "
            "lists as consumer-only (`fetch.wait.max.ms`, `session.timeout.ms`, ...) goes to "
            "the consumers only, a producer-only one (`linger.ms`, `compression.type`, ...) to "
            "the producers only, any other to every consumer, producer and admin client. "
            'A name librdkafka does not know (with a "did you mean"), a value it refuses, '
            "or settings it refuses together (SASL without a password or a `sasl.mechanism`) "
            "is a config problem, found by `swimstream check` as by `run` without "
            "connecting anywhere. Settings swimstream owns "
            "(`group.id`, `transactional.id`, `enable.auto.commit`, `acks`, `client.id`, ...) "
            "are refused, and so is a `partition.assignment.strategy` other than `range` "
            "with durable state and several Kafka source topics (it would split a shard's "
            "partitions between instances). In an app with no Kafka client (Pulsar its "
            "broker and every source's and sink's), any setting here is a config problem."
        ),
    )
    pulsar: PulsarClientConfig = Field(
        default_factory=PulsarClientConfig,
        description=(
            "Authentication and TLS of the Pulsar clients (pulsar-client's own names); "
            "Kafka's go in `settings`. Set in an app with no Pulsar client, it is a config "
            "problem."
        ),
    )
    create_topics: Boolean = Field(
        default=True,
        description=(
            "Create missing source, sink, changelog and dead-letter topics at start. When "
            "false, a missing topic stops the start with an error naming it. Kafka only: "
            "a Pulsar broker creates a topic on first use when its namespace allows it "
            "(pulsar-lite always does), and swimstream does not administer Pulsar."
        ),
    )
    partitions: Integer = Field(
        default=8,
        ge=1,
        le=10_000,
        description=(
            "Partitions of the topics swimstream creates. Source topics must all have the "
            "same count (they are co-partitioned: partition p of each is shard p)."
        ),
    )
    replication_factor: Integer | None = Field(
        default=None,
        ge=1,
        description="Replication factor of created topics; unset uses the broker's default.",
    )
    static_membership: Boolean | None = Field(
        default=None,
        json_schema_extra={DEFAULT_DOC: "true, except with the embedded broker"},
        description=(
            "Join the consumer group as a static member (`group.instance.id` = "
            "`mesh.instance_id`): on Apache Kafka a restarted instance, even after a crash, "
            "gets its partitions back without a rebalance. Tansu (the embedded broker) holds "
            "every static member's join and sync for 3 s each, so there a dynamic member "
            "(`false`) is ready sooner after a clean stop, though after a crash its old "
            "membership blocks the group until the session expires."
        ),
    )
    subscription_type: SubscriptionType | None = Field(
        default=None,
        json_schema_extra={DEFAULT_DOC: "`key_shared`; `shared` with the embedded broker"},
        description=(
            "The Pulsar subscription type of the sources. `key_shared` gives each key to one "
            "member, as a Kafka partition does; `shared` spreads records regardless of keys; "
            "`failover` gives each topic partition to one member; `exclusive` admits one. "
            "pulsar-lite (the embedded Pulsar) delivers correctly only with `shared`: its "
            "Key_Shared now and then delivers a message twice and stalls redelivery."
        ),
    )
    partitioner: Partitioner = Field(
        default="murmur2",
        description=(
            "How record keys map to partitions, as the producers of the source topics do it: "
            "`murmur2` (Java clients, Kafka Streams) or `crc32` (librdkafka's default, used "
            "by confluent-kafka). Agents are sharded the same way, so keyed events reach the "
            "instance that owns their agent without forwarding."
        ),
    )

    @property
    def static_members(self) -> bool:
        """Whether Kafka consumers join as static members (see ``static_membership``)."""
        if self.static_membership is not None:
            return self.static_membership
        return self.kind != "embedded"

    @property
    def protocol(self) -> Protocol:
        """The protocol the broker speaks (for ``embedded``, ``embedded_kind``)."""
        if self.kind == "embedded":
            return self.embedded_kind
        return self.kind

    def serves(self, protocol: Protocol) -> bool:
        """Whether a source or sink of ``protocol`` can be reached through this broker."""
        if protocol == self.protocol:
            return True
        return (self.bootstrap if protocol == "kafka" else self.service_url) is not None

    @model_validator(mode="after")
    def _check_addresses(self) -> BrokerConfig:
        problems: list[tuple[str, str]] = []
        if self.kind == "kafka" and self.bootstrap is None:
            problems.append(("bootstrap", "required when kind is kafka"))
        if self.kind == "pulsar" and self.service_url is None:
            problems.append(("service_url", "required when kind is pulsar"))
        problems += self._pulsar_tls_problems()
        problems += self._record_limit_problems()
        if problems:
            raise ConfigError(problems=problems)
        return self

    def _record_limit_problems(self) -> list[tuple[str, str]]:
        """A producer limit that leaves no room for records once the margin is kept:
        every record would be dead-lettered as too large, at the door."""
        limit = self.settings.get("message.max.bytes")
        try:
            number = int(str(limit).strip())
        except ValueError:
            return []  # (librdkafka's own check names a value that is no number)
        if limit is None or isinstance(limit, bool) or number >= SMALLEST_RECORD_LIMIT:
            return []
        return [
            (
                format_path(["settings", "message.max.bytes"]),
                f"at least {SMALLEST_RECORD_LIMIT} bytes: swimstream keeps {RECORD_MARGIN} "
                "of each record for keys, headers and encoding, and refuses any larger "
                "record from a source at the door",
            )
        ]

    def _pulsar_tls_problems(self) -> list[tuple[str, str]]:
        """TLS keys of ``pulsar`` where the Pulsar clients would not use TLS: the client
        ignores them then, and the records would cross the network in the clear."""
        keys = self.pulsar.tls_keys()
        if self.protocol == "pulsar" and self.kind == "embedded":
            return [
                (f"pulsar.{key}", "the embedded Pulsar broker speaks plaintext only; remove it")
                for key in keys
            ]
        if self.service_url is None or is_tls_url(self.service_url):
            return []
        why = "needs a TLS service URL: write broker.service_url as pulsar+ssl://host:6651"
        if self.pulsar.uses_oauth2:  # (the CA file serves the identity provider then)
            keys = [key for key in keys if key != "tls_trust_certs_file_path"]
        return [(f"pulsar.{key}", why) for key in keys]
