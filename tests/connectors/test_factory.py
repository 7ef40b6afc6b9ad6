"""The connector factory against the session's real broker: what the service's clients
are made of."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka, EmbeddedPulsar
from connectors.factory import open_connectors, pulsar_security
from connectors.kafka import KafkaSource
from connectors.pulsar import PulsarSource
from swimstream.config import parse_config
from tests.config.documents import document, problems


def _config(kafka: EmbeddedKafka, **broker: Any) -> Any:
    return parse_config(
        document(broker={"kind": "kafka", "bootstrap": kafka.bootstrap, **broker}), {}
    )


def _starting(reset: str, **broker: Any) -> Any:
    """An app config whose one source starts where ``reset`` says."""
    source = {"topic": "t", "route": "/vehicle/{key}", "lane": "position", "offset_reset": reset}
    return parse_config(document(broker=broker, sources=[source]), {})


@pytest.mark.parametrize(("static", "expected"), [(None, "edge-1"), (False, None)])
async def test_sources_join_as_static_members_unless_told_otherwise(
    kafka_broker: EmbeddedKafka, static: bool | None, expected: str | None
) -> None:
    config = _config(kafka_broker, **({} if static is None else {"static_membership": static}))
    async with open_connectors(config, "edge-1") as clients:
        source = clients["kafka"].make_source(["vehicle-positions"])
    assert isinstance(source, KafkaSource)
    assert source.instance_id == expected
    assert source._config.get("group.instance.id") == expected  # what librdkafka is given


@pytest.mark.parametrize(("chosen", "expected"), [(None, "key_shared"), ("shared", "shared")])
async def test_pulsar_sources_take_the_configured_subscription_type(
    pulsar_broker: EmbeddedPulsar, chosen: str | None, expected: str
) -> None:
    broker: dict[str, Any] = {"kind": "pulsar", "service_url": pulsar_broker.service_url}
    if chosen is not None:
        broker["subscription_type"] = chosen
    config = parse_config(document(broker=broker), {})
    async with open_connectors(config, "edge-1") as clients:
        source = clients["pulsar"].make_source(["vehicle-positions"])
    assert isinstance(source, PulsarSource)
    assert source.settings.subscription_type == expected


@pytest.mark.parametrize("reset", ["earliest", "latest"])
async def test_pulsar_sources_start_a_new_subscription_where_offset_reset_says(
    pulsar_broker: EmbeddedPulsar, reset: str
) -> None:
    """``offset_reset: latest`` on a Pulsar source was ignored: a new subscription read
    the topic's whole history, as with ``earliest``."""
    config = _starting(reset, kind="pulsar", service_url=pulsar_broker.service_url)
    async with open_connectors(config, "edge-1") as clients:
        source = clients["pulsar"].make_source(["t"])
    assert isinstance(source, PulsarSource)
    assert source.settings.initial_position == reset


def test_an_unknown_subscription_type_names_the_key() -> None:
    assert any(
        line.startswith("broker.subscription_type:")
        for line in problems(
            document(
                broker={
                    "kind": "pulsar",
                    "service_url": "pulsar://h:6650",
                    "subscription_type": "keyshared",
                }
            )
        )
    )


async def test_an_embedded_broker_starts_without_writing_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`run` with `kind: embedded` wrote `starting embedded Kafka ... ready in 0.1 s` as
    raw text to stderr, in the middle of the log lines (one JSON object per line under
    `--log-format json`); the broker logs its start and address itself."""
    config = parse_config(document(broker={"kind": "embedded"}), {})
    async with open_connectors(config, "edge-1") as clients:
        assert "kafka" in clients
    assert capsys.readouterr().err == ""


# By default the queue's byte bound comes first: 64 MiB (the service's
# queue.buffering.max.kbytes) at a KiB a record, 65,536 records.
@pytest.mark.parametrize(("queue", "expected"), [(None, 32_768), (1_000, 500)])
async def test_the_sources_pause_at_half_the_kafka_producer_s_queue(
    kafka_broker: EmbeddedKafka, queue: int | None, expected: int
) -> None:
    """Past its queue, ``produce`` blocks the event loop (see sink_pressure.py)."""
    settings = {} if queue is None else {"queue.buffering.max.messages": queue}
    async with open_connectors(_config(kafka_broker, settings=settings), "edge-1") as clients:
        assert clients["kafka"].max_pending == expected


async def test_the_sources_pause_at_half_a_pulsar_producer_s_pending_records(
    pulsar_broker: EmbeddedPulsar,
) -> None:
    """A Pulsar sink holds records back once a topic has 10,000 unacknowledged
    (``max_pending_messages``): the sources pause at half of that."""
    broker: dict[str, Any] = {"kind": "pulsar", "service_url": pulsar_broker.service_url}
    async with open_connectors(parse_config(document(broker=broker), {}), "edge-1") as clients:
        assert clients["pulsar"].max_pending == 5_000


@pytest.mark.parametrize("reset", ["earliest", "latest"])
async def test_kafka_sources_start_a_new_group_where_offset_reset_says(
    kafka_broker: EmbeddedKafka, reset: str
) -> None:
    config = _starting(reset, kind="kafka", bootstrap=kafka_broker.bootstrap)
    async with open_connectors(config, "edge-1") as clients:
        source = clients["kafka"].make_source(["t"])
    assert isinstance(source, KafkaSource)
    assert source._config["auto.offset.reset"] == reset  # what librdkafka is given


async def test_security_settings_reach_every_kafka_client(kafka_broker: EmbeddedKafka) -> None:
    """The consumers, the producer, the admin client and the changelog reader all talk
    to a secured broker, so each gets the ``security.*``, ``sasl.*`` and ``ssl.*``
    settings (PLAINTEXT here: the embedded broker speaks nothing else, and librdkafka
    leaves the others unused)."""
    security = {
        "security.protocol": "PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
        "ssl.key.password": "s3cret",
        "ssl.endpoint.identification.algorithm": "https",
    }
    async with open_connectors(_config(kafka_broker, settings=security), "edge-1") as clients:
        kafka = clients["kafka"]
        source = kafka.make_source(["vehicle-positions"])
        changelog = kafka.changelog
        given = {
            "source": source._config,  # type: ignore[attr-defined]
            "sink": kafka.sink._config,  # type: ignore[attr-defined]
            "admin": kafka.admin._config,  # type: ignore[union-attr]
            "changelog": changelog._consumer_config("g"),  # type: ignore[union-attr]
        }
    for client, config in given.items():
        assert {name: config.get(name) for name in security} == security, client


SECRET = "Hunter2-s3cret"


def test_the_pulsar_clients_get_what_broker_pulsar_says() -> None:
    pulsar = {
        "tls_trust_certs_file_path": "/etc/pulsar/ca.pem",
        "authentication": {"token": "${PULSAR_TOKEN}"},
    }
    broker = {"kind": "pulsar", "service_url": "pulsar+ssl://pulsar:6651", "pulsar": pulsar}
    config = parse_config(document(broker=broker), {"PULSAR_TOKEN": SECRET})

    security = pulsar_security(config.broker.pulsar)

    assert security.token == SECRET
    assert security.trust_certs_file == "/etc/pulsar/ca.pem"
    assert security.validate_hostname  # (unlike pulsar-client's default)
    assert SECRET not in repr(security) and SECRET not in repr(config)
