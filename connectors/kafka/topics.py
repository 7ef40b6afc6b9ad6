"""Reading topic metadata: which topics exist and how many partitions each has.

Shared by the source (its topics must exist before it subscribes: a subscription to a
missing topic just waits, silently) and the admin. Blocking; run it in a worker thread.
Each topic is asked for by name, so a cluster with thousands of topics costs nothing,
and a consumer's metadata request does not create a topic (``allow.auto.create.topics``
is false by default).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from connectors.kafka.errors import KafkaBrokerError, describe, translate


class MetadataClient(Protocol):
    """A Consumer, Producer or AdminClient: anything that answers Metadata."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...


def partition_counts(
    client: MetadataClient, topics: Iterable[str], bootstrap: str, timeout: float
) -> tuple[dict[str, int], list[str]]:
    """``({topic: partitions} of the existing topics, [missing topics])``.

    Raises:
        KafkaBrokerError: the broker did not answer, or refused a topic for another
            reason than its absence (authorization, for one).
    """
    counts: dict[str, int] = {}
    missing: list[str] = []
    for topic in topics:
        try:
            metadata = client.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise translate(
                exc, f"reading metadata of topic {topic!r} from Kafka at {bootstrap}"
            ) from exc
        found = metadata.topics.get(topic)
        error: KafkaError | None = None if found is None else found.error
        if found is None or (
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            missing.append(topic)
        elif error is not None:
            raise KafkaBrokerError(
                f"topic {topic!r} on Kafka at {bootstrap}: {describe(error)}", code=error.name()
            )
        elif not found.partitions:
            missing.append(topic)
        else:
            counts[topic] = len(found.partitions)
    return counts, missing


def check_topics(
    client: MetadataClient, topics: Iterable[str], bootstrap: str, timeout: float
) -> dict[str, int]:
    """The partition count of every topic; all must exist.

    Raises:
        KafkaBrokerError: naming every missing topic, or why metadata could not be read.
    """
    counts, missing = partition_counts(client, topics, bootstrap, timeout)
    if missing:
        raise KafkaBrokerError(
            f"source topic(s) {', '.join(repr(t) for t in missing)} do not exist on Kafka at "
            f"{bootstrap}; create them, or let swimstream create them (broker.create_topics)",
            code="UNKNOWN_TOPIC_OR_PART",
        )
    return counts
