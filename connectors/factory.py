"""The broker clients an app config asks for, opened together and closed together.

This is the :class:`~swimstream.service.ConnectorFactory` the CLI hands the service: it
starts an embedded broker when the config says ``kind: embedded``, then opens one sink
(producer), one admin and a source factory per protocol the app uses (its broker's, plus
any source or sink of the other kind), and closes them all, broker last, when the
service stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from types import ModuleType
from typing import Literal, Protocol, TypeVar

from connectors.kafka import KafkaAdmin, KafkaSink, KafkaSource
from connectors.kafka.changelog import KafkaChangelogReader
from connectors.pulsar import PULSAR_LITE_SETTINGS, PulsarSettings, PulsarSink, PulsarSource
from connectors.pulsar.security import PulsarSecurity, oauth2_params
from swimstream.config import AppConfig
from swimstream.config.pulsar_client import PulsarClientConfig
from swimstream.errors import BrokerError
from swimstream.service import ProtocolClients
from swimstream.streams import SourceConnector


def _embedded_brokers() -> ModuleType:
    """The embedded brokers, imported only for ``kind: embedded``: their binaries come
    with the ``embedded`` extra, which a deployment next to its own broker (the Docker
    image) does not install."""
    try:
        import connectors.embedded
    except ImportError as exc:
        raise BrokerError(
            f"broker.kind: embedded needs the embedded brokers, and {exc.name or exc} is "
            "not installed: pip install 'swimstream[embedded]'"
        ) from exc
    return connectors.embedded


class _Broker(Protocol):
    def start(self) -> object: ...
    def stop(self) -> None: ...
    def ensure_running(self) -> None: ...


BrokerT = TypeVar("BrokerT", bound=_Broker)


async def _start_embedded(broker: BrokerT) -> BrokerT:
    """Start an embedded broker in a thread. A stop asked for meanwhile (the service
    cancels its start) lets the start finish, then stops the broker: a cancel alone
    would leave its process running, with nobody to stop it."""
    starting = asyncio.ensure_future(asyncio.to_thread(broker.start))
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):  # (a start that failed left nothing behind)
            await starting
        await asyncio.to_thread(broker.stop)
        raise
    return broker


@contextlib.asynccontextmanager
async def open_connectors(
    config: AppConfig, instance_id: str
) -> AsyncIterator[dict[str, ProtocolClients]]:
    """Open the clients of every protocol the app uses; close them on exit."""
    broker = config.broker
    async with contextlib.AsyncExitStack() as stack:
        bootstrap = broker.bootstrap
        service_url = broker.service_url
        consumer_settings: dict[str, str | int | float | bool] = {}
        pulsar_settings: PulsarSettings | None = None
        started: _Broker | None = None  # (the embedded broker)
        if broker.kind == "embedded":
            # Started plainly, not with start_with_progress: the broker logs its start and
            # address itself, and raw text on stderr would break `--log-format json`.
            embedded = _embedded_brokers()
            if broker.embedded_kind == "kafka":
                kafka = started = await _start_embedded(embedded.EmbeddedKafka())
                stack.callback(kafka.stop)
                bootstrap = kafka.bootstrap
                # Tansu holds a group join for half the session timeout: keep it short.
                consumer_settings["session.timeout.ms"] = 6000
            else:
                pulsar = started = await _start_embedded(embedded.EmbeddedPulsar())
                stack.callback(pulsar.stop)
                service_url = pulsar.service_url
                pulsar_settings = PULSAR_LITE_SETTINGS
        clients: dict[str, ProtocolClients] = {}
        used = config.protocols
        if "kafka" in used:
            assert bootstrap is not None, "the config checks that kafka has a bootstrap"
            clients["kafka"] = await _kafka(
                stack, config, bootstrap, consumer_settings, instance_id
            )
        if broker.subscription_type is not None:
            pulsar_settings = replace(
                pulsar_settings or PulsarSettings(), subscription_type=broker.subscription_type
            )
        if "pulsar" in used:
            pulsar_settings = replace(
                pulsar_settings or PulsarSettings(), security=pulsar_security(broker.pulsar)
            )
            assert service_url is not None, "the config checks that pulsar has a service URL"
            clients["pulsar"] = await _pulsar(
                stack, config, service_url, instance_id, pulsar_settings
            )
        if started is not None:  # (a broker process that died is never back)
            for protocol_clients in clients.values():
                protocol_clients.broker_gone = _gone(started)
        yield clients


def _gone(broker: _Broker) -> Callable[[], str | None]:
    """Why ``broker`` (embedded) is gone, or None while its process runs."""

    def gone() -> str | None:
        try:
            broker.ensure_running()
        except BrokerError as exc:  # (its first line: what happened and where the log is)
            return str(exc).splitlines()[0].rstrip(":")
        return None

    return gone


def pulsar_security(config: PulsarClientConfig) -> PulsarSecurity:
    """The connector's form of ``broker.pulsar``: every Pulsar client gets it."""
    security = PulsarSecurity(
        trust_certs_file=config.tls_trust_certs_file_path,
        allow_insecure_connection=config.tls_allow_insecure_connection,
        validate_hostname=config.tls_validate_hostname,
    )
    auth = config.authentication
    if auth is None:
        return security
    if auth.tls is not None:
        return replace(
            security,
            certificate_path=auth.tls.certificate_path,
            private_key_path=auth.tls.private_key_path,
        )
    if auth.oauth2 is not None:
        oauth2 = auth.oauth2
        params = oauth2_params(oauth2.issuer_url, oauth2.private_key, oauth2.audience, oauth2.scope)
        return replace(security, oauth2_params=params)
    if auth.basic is not None:
        return replace(
            security, basic_username=auth.basic.username, basic_password=auth.basic.password
        )
    return replace(security, token=auth.token, token_file=auth.token_file)


KAFKA_MAX_RECORD_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``: the producer refuses larger records."""
PULSAR_MAX_RECORD_BYTES = 5 * 1024 * 1024
"""A Pulsar broker's default ``maxMessageSize``."""


def _offset_reset(config: AppConfig, protocol: str) -> Literal["earliest", "latest"]:
    for source in config.sources:
        if (source.kind or config.broker.protocol) == protocol:
            return source.offset_reset
    return "earliest"


async def _kafka(
    stack: contextlib.AsyncExitStack,
    config: AppConfig,
    bootstrap: str,
    consumer_settings: dict[str, str | int | float | bool],
    instance_id: str,
) -> ProtocolClients:
    broker = config.broker
    settings = dict(broker.settings)
    transactional = config.store.durable and config.processing.guarantee == "exactly-once"
    sink = KafkaSink(
        bootstrap,
        settings=settings,
        partitioner=broker.partitioner,
        transactional_id=f"{config.app}-{instance_id}" if transactional else None,
    )
    await sink.open()
    stack.push_async_callback(sink.close)
    admin = KafkaAdmin(bootstrap, settings, replication_factor=broker.replication_factor)
    # Its connection stayed open until the process exited, so an embedded Tansu, which
    # waits for every open connection at SIGTERM, was killed at every stop.
    stack.callback(admin.close)
    offset_reset = _offset_reset(config, "kafka")

    def make_source(topics: Sequence[str]) -> SourceConnector:
        return KafkaSource(
            bootstrap,
            config.consumer_group,
            topics,
            instance_id=instance_id if broker.static_members else None,
            settings={**consumer_settings, **settings},
            offset_reset=offset_reset,
        )

    return ProtocolClients(
        "kafka",
        sink,
        make_source,
        admin,
        changelog=KafkaChangelogReader(bootstrap, {**settings, **consumer_settings}),
        transactional=transactional,
        max_record_bytes=int(settings.get("message.max.bytes", KAFKA_MAX_RECORD_BYTES)),
        address=bootstrap,
        max_pending=sink.queue_limit // 2,
    )


async def _pulsar(
    stack: contextlib.AsyncExitStack,
    config: AppConfig,
    service_url: str,
    instance_id: str,
    settings: PulsarSettings | None,
) -> ProtocolClients:
    # A new subscription starts where the Pulsar sources' offset_reset says, as a new
    # Kafka consumer group does (the settings' own default is the earliest message).
    settings = replace(
        settings or PulsarSettings(), initial_position=_offset_reset(config, "pulsar")
    )
    sink = PulsarSink(service_url, settings=settings)
    await sink.open()
    stack.push_async_callback(sink.close)

    def make_source(topics: Sequence[str]) -> SourceConnector:
        return PulsarSource(
            service_url, config.consumer_group, topics, consumer_name=instance_id, settings=settings
        )

    return ProtocolClients(
        "pulsar",
        sink,
        make_source,
        None,
        max_record_bytes=PULSAR_MAX_RECORD_BYTES,
        address=service_url,
        # Past a topic's max_pending_messages unacknowledged, the sink holds records back
        # in memory (its producers would block the event loop): the sources pause at
        # half of that, across all its topics.
        max_pending=settings.max_pending_messages // 2,
    )
