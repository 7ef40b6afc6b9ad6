"""KafkaAdmin: creates and checks the app's topics through confluent-kafka's AdminClient.

Topics are always created with an explicit ``cleanup.policy`` (``compact`` for changelog
and directory topics, ``delete`` otherwise), ``retention.ms`` and ``retention.bytes``:
Apache Kafka would fill in its defaults, but Tansu reports an empty configuration for a
topic created without them, and a reader of the topic's config should see what
swimstream meant. Creation is only done once Metadata shows every partition with a
leader, because the first produce or fetch right after CreateTopics can otherwise fail
with UNKNOWN_TOPIC_OR_PART. Another instance creating the same topic at the same moment
is not an error: its partition count is what this instance reports.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # (not re-exported for type checkers)
from confluent_kafka.cimpl import NewTopic

from connectors.kafka.errors import CLIENT_LOG, KafkaBrokerError, kafka_error_of, translate
from connectors.kafka.settings import ADMIN_DEFAULTS, ADMIN_OWNED, Settings, merge
from connectors.kafka.topics import partition_counts
from swimstream.errors import BrokerError
from swimstream.logfields import partition_names
from swimstream.text import counted

log = logging.getLogger("swimstream.kafka.admin")

DELETE_TOPIC_CONFIG: Final[Mapping[str, str]] = {
    "cleanup.policy": "delete",
    "retention.ms": str(7 * 24 * 3600 * 1000),  # Apache Kafka's default: a week
    "retention.bytes": "-1",
}
COMPACT_TOPIC_CONFIG: Final[Mapping[str, str]] = {
    "cleanup.policy": "compact",
    "retention.ms": "-1",  # a compacted topic keeps the latest record of every key
    "retention.bytes": "-1",
}
_POLL_INTERVAL = 0.05


class KafkaAdmin:
    """Creates and checks topics (see the module docstring).

    Args:
        bootstrap: ``host:port[,host:port...]``.
        settings: librdkafka settings (security and the like).
        replication_factor: of created topics; None uses the broker's default.
        topic_config: topic settings over the defaults above, for every created topic.
        timeout: seconds each operation may take.
    """

    def __init__(
        self,
        bootstrap: str,
        settings: Settings | None = None,
        *,
        replication_factor: int | None = None,
        topic_config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self._config = merge(
            ADMIN_DEFAULTS, settings, ADMIN_OWNED,
            {"bootstrap.servers": bootstrap, "client.id": "swimstream-admin"},
            client="admin",
        )  # fmt: skip
        self._replication_factor = replication_factor
        self._topic_config = dict(topic_config or {})
        self._timeout = timeout
        self._admin: AdminClient | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<KafkaAdmin at {self.bootstrap}>"

    async def ensure_topics(
        self, topics: Mapping[str, int], *, create: bool, compacted: Sequence[str] = ()
    ) -> dict[str, int]:
        """Make sure each topic exists, creating missing ones with the given partition
        count when ``create``; returns every topic's actual partition count.

        Raises:
            KafkaBrokerError: topics are missing and ``create`` is False (all named), the
                broker refused to create one, or did not answer.
        """
        counts, missing = await self._metadata(topics)
        if missing and not create:
            raise KafkaBrokerError(
                f"topic(s) {_names(missing)} do not exist on Kafka at {self.bootstrap}; create "
                "them, or let swimstream create them (broker.create_topics: true)",
                code="UNKNOWN_TOPIC_OR_PART",
            )
        if missing:
            await self._create({name: topics[name] for name in missing}, set(compacted))
            created, still_missing = await self._metadata(missing)
            counts.update(created)
            if still_missing:
                raise KafkaBrokerError(
                    f"topic(s) {_names(still_missing)} on Kafka at {self.bootstrap} were "
                    "created but do not show in its metadata"
                )
        if compacted:
            await asyncio.get_running_loop().run_in_executor(None, self._check_kept, compacted)
        return {name: counts[name] for name in topics}

    def _check_kept(self, topics: Sequence[str]) -> None:
        """Refuse a compacted topic whose configuration deletes records by age or size.

        It holds state (the changelog): one made by hand, or by a ``topic_config`` over
        every created topic, with ``cleanup.policy=delete`` and a retention (a week,
        Kafka's default), dropped every agent unchanged for that long, found only when
        a restore from it (a new machine, a lost disk) came back without them. A
        configuration the broker does not report (Tansu's, for a topic made without
        one) or will not show is taken as it is: nothing says it deletes."""
        admin = self._client()
        resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in topics]
        try:
            futures = admin.describe_configs(resources, request_timeout=self._timeout)
            described = {r.name: f.result(self._timeout) for r, f in futures.items()}
        except KafkaException as exc:
            log.warning("the configuration of topic(s) %s cannot be read: %s", _names(topics), exc)
            return
        for name, entries in described.items():
            config = {key: entry.value for key, entry in entries.items()}
            policy = str(config.get("cleanup.policy") or "")
            limits = {k: config.get(k) for k in ("retention.ms", "retention.bytes")}
            if "delete" in policy.split(",") and any(
                v not in (None, "-1") for v in limits.values()
            ):
                settings = ", ".join(
                    f"{k}={v}" for k, v in {"cleanup.policy": policy, **limits}.items()
                )
                raise KafkaBrokerError(
                    f"topic {name!r} on Kafka at {self.bootstrap} holds state and must keep "
                    f"the latest record of every key, but its configuration deletes records "
                    f"({settings}): a restore from it (a new machine, a lost disk) would "
                    "lose every agent unchanged for longer; set cleanup.policy=compact on it "
                    f"(kafka-configs.sh --alter --entity-type topics --entity-name {name} "
                    "--add-config cleanup.policy=compact)"
                )

    async def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        """The partition count of each topic that exists (missing ones are left out)."""
        counts, _missing = await self._metadata(list(topics))
        return counts

    def close(self) -> None:
        """Release the client and its broker connections; idempotent.

        AdminClient has no close of its own: dropping the last reference destroys it,
        which closes its connections at once (well under a millisecond, measured). An
        admin left open keeps a connection the broker sees until the process exits, and
        Tansu waits for every open connection when it is asked to stop."""
        self._closed = True
        self._admin = None

    # -- internals ----------------------------------------------------------------------

    def _client(self) -> AdminClient:
        if self._closed:
            raise BrokerError(f"{self!r} is closed")
        if self._admin is None:
            try:
                self._admin = AdminClient(self._config, logger=CLIENT_LOG)
            except KafkaException as exc:
                raise translate(exc, f"creating the admin client for {self.bootstrap}") from exc
        return self._admin

    async def _metadata(self, topics: Iterable[str]) -> tuple[dict[str, int], list[str]]:
        read = functools.partial(
            partition_counts, self._client(), list(topics), self.bootstrap, self._timeout
        )
        return await asyncio.get_running_loop().run_in_executor(None, read)

    async def _create(self, topics: Mapping[str, int], compacted: set[str]) -> None:
        admin = self._client()
        new_topics = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=self._replication_factor or -1,
                config={
                    **(COMPACT_TOPIC_CONFIG if name in compacted else DELETE_TOPIC_CONFIG),
                    **self._topic_config,
                },
            )
            for name, partitions in topics.items()
        ]
        try:
            futures = admin.create_topics(new_topics, request_timeout=self._timeout)
        except KafkaException as exc:
            what = f"creating topics {_names(topics)} on Kafka at {self.bootstrap}"
            raise translate(exc, what) from exc
        for name, future in futures.items():
            try:
                await asyncio.wrap_future(future)
            except KafkaException as exc:
                error = kafka_error_of(exc)
                if error is not None and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    log.info(
                        "topic %r was created meanwhile by someone else",
                        name,
                        extra={"topic": name},
                    )
                    continue
                partitions = counted(topics[name], "partition")
                what = f"creating topic {name!r} ({partitions}) on Kafka at "
                raise translate(exc, what + self.bootstrap) from exc
            log.info(
                "created topic %r with %s",
                name,
                counted(topics[name], "partition"),
                extra={
                    "topic": name,
                    "partitions": partition_names((name, p) for p in range(topics[name])),
                },
            )
        await asyncio.get_running_loop().run_in_executor(None, self._wait_for_leaders, topics)

    def _wait_for_leaders(self, topics: Mapping[str, int]) -> None:
        """Block until Metadata shows every partition of ``topics`` with a leader.

        A broker that stopped answering meanwhile (the last look went unanswered) is
        reported ``unreachable``: the start waits for it, and its next try finds the
        topics made."""
        admin = self._client()
        deadline = time.monotonic() + self._timeout
        waiting = dict(topics)
        silent: KafkaException | None = None
        while waiting:
            for name in list(waiting):
                try:
                    found = admin.list_topics(name, timeout=_POLL_INTERVAL * 20).topics.get(name)
                    silent = None
                except KafkaException as exc:
                    found, silent = None, exc
                if (
                    found is not None
                    and found.error is None
                    and len(found.partitions) >= waiting[name]
                    and all(p.leader >= 0 for p in found.partitions.values())
                ):
                    del waiting[name]
            if waiting and time.monotonic() >= deadline:
                raise KafkaBrokerError(
                    f"topic(s) {_names(waiting)} on Kafka at {self.bootstrap} did not show "
                    f"all partitions with a leader within {self._timeout:g} s"
                    + (f" (the broker did not answer: {silent})" if silent else ""),
                    unreachable=silent is not None,
                )
            if waiting:
                time.sleep(_POLL_INTERVAL)


def _names(topics: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in topics)
