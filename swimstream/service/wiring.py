"""What the service needs from the outside world: broker clients, per protocol.

The service is written against the connector protocols only; the concrete Kafka and
Pulsar clients (and the embedded brokers) live in the top-level ``connectors`` package,
which depends on swimstream and not the other way round. The CLI joins the two by
passing a :class:`ConnectorFactory` (``connectors.factory.open_connectors``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from swimstream.config import AppConfig
from swimstream.streams import ChangelogReader, SinkConnector, SourceConnector, TopicAdmin
from swimstream.streams.sink_pressure import Coalescing, SinkLimit, SinkPressure


@dataclass
class ProtocolClients:
    """The clients of one protocol (kafka or pulsar) the app uses."""

    protocol: str
    sink: SinkConnector
    make_source: Callable[[Sequence[str]], SourceConnector]
    """A consumer of the given topics in the app's group (or subscription)."""
    admin: TopicAdmin | None = None
    """Topic creation and checks; None where the protocol creates topics on first use."""
    changelog: ChangelogReader | None = None
    """Reads the changelog at recovery (Kafka only)."""
    transactional: bool = False
    """The sink runs transactions (exactly-once on Kafka)."""
    group_metadata: Callable[[], object] | None = None
    """The source consumer's group metadata, for offsets in a transaction (set by the
    service once the source exists)."""
    max_record_bytes: int = 1_000_000
    """The largest record the sink writes (Kafka: the producer's ``message.max.bytes``)."""
    address: str = ""
    """Where the broker is (bootstrap servers or service URL), for logs and the demo."""
    max_pending: int = 0
    """Unacknowledged records the sink may hold before the sources pause (0: no limit
    of its own; see :mod:`swimstream.streams.sink_pressure`)."""
    broker_gone: Callable[[], str | None] | None = None
    """Why the embedded broker these clients talk to is gone (None while it runs), for
    ``kind: embedded``: a broker process that died is never back (see
    :mod:`swimstream.service.embedded_watch`)."""


def sink_pressure(
    clients: Mapping[str, ProtocolClients], coalescing: Sequence[Coalescing] = ()
) -> SinkPressure:
    """What pauses the sources for the sinks of ``clients`` (and flushes the coalesced
    lane sinks while they are paused)."""
    limits = [SinkLimit(c.sink, c.max_pending) for c in clients.values()]
    return SinkPressure(limits, coalescing)


class ConnectorFactory(Protocol):
    """Opens the clients of every protocol the config uses, and closes them at exit."""

    def __call__(
        self, config: AppConfig, instance_id: str
    ) -> AbstractAsyncContextManager[dict[str, ProtocolClients]]: ...
