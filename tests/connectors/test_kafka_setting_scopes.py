"""Each Kafka client takes the user settings that apply to it: librdkafka warns
(CONFWARN) at a client's creation for every property meant for the other client type,
and ``broker.settings`` is one map for all of them. A name librdkafka does not know goes
to every client, so a misspelled one still stops the start."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pytest

from connectors.embedded import FAST_CONSUMER_SETTINGS, EmbeddedKafka, TopicFactory
from connectors.factory import open_connectors
from connectors.kafka import KafkaBrokerError, KafkaSink, KafkaSource
from connectors.kafka.errors import CLIENT_LOG
from connectors.kafka.settings import ClientKind, applicable, merge
from swimstream.config import parse_config
from tests.config.documents import document
from tests.connectors.conftest import pump

USER_SETTINGS: dict[str, str | int | float | bool] = {
    "fetch.wait.max.ms": 50,  # consumer only
    "linger.ms": 20,  # producer only
    "socket.timeout.ms": 30_000,  # both
    "fetch.wait.maxms": 50,  # not librdkafka's: misspelled
}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("consumer", {"fetch.wait.max.ms", "socket.timeout.ms", "fetch.wait.maxms"}),
        ("producer", {"linger.ms", "socket.timeout.ms", "fetch.wait.maxms"}),
        ("admin", {"socket.timeout.ms", "fetch.wait.maxms"}),
    ],
)
def test_each_kind_of_client_takes_the_settings_that_apply_to_it(
    kind: ClientKind, expected: set[str]
) -> None:
    taken = applicable(USER_SETTINGS, kind)
    assert set(taken) == expected
    assert all(taken[name] == USER_SETTINGS[name] for name in taken)


def test_topic_properties_are_scoped_too() -> None:
    settings = {"auto.offset.reset": "latest", "compression.level": 3}
    assert applicable(settings, "producer") == {"compression.level": 3}
    assert applicable(settings, "consumer") == {"auto.offset.reset": "latest"}


@pytest.mark.parametrize(
    ("client", "kind"), [("source", "consumer"), ("sink", "producer"), ("admin", "admin")]
)
def test_each_client_builds_on_its_share_of_the_user_settings(
    client: Literal["source", "sink", "admin"], kind: ClientKind
) -> None:
    config = merge(
        {"client.rack": "a"}, USER_SETTINGS, frozenset(), {"client.id": "c"}, client=client
    )
    assert config == {"client.rack": "a", **applicable(USER_SETTINGS, kind), "client.id": "c"}


def _config(kafka: EmbeddedKafka, settings: dict[str, Any]) -> Any:
    broker = {"kind": "kafka", "bootstrap": kafka.bootstrap, "settings": settings}
    return parse_config(document(broker=broker), {})


async def test_the_service_clients_log_no_confwarn_for_consumer_and_producer_tuning(
    kafka_broker: EmbeddedKafka,
    make_topic: TopicFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The repeat filter would drop a line like one an earlier test logged.
    monkeypatch.setattr(CLIENT_LOG, "filters", [])
    caplog.set_level(logging.INFO, logger=CLIENT_LOG.name)
    topic = make_topic(partitions=1)
    settings = {
        **FAST_CONSUMER_SETTINGS,
        "linger.ms": 1,
        "compression.level": 3,
        # Deprecated and unused, for both client types: each client warns about it once,
        # which shows that its log lines do reach the log.
        "socket.blocking.max.ms": 1000,
    }
    async with open_connectors(_config(kafka_broker, settings), "edge-1") as clients:
        kafka = clients["kafka"]
        sink = kafka.sink
        assert isinstance(sink, KafkaSink)
        sink.begin_transaction()  # the default config's sink is transactional
        sink.produce(topic, b"k", b"{}")
        await sink.commit_transaction()  # flushes, serving the producer's log lines
        assert kafka.changelog is not None
        await kafka.changelog.read(topic, {}, lambda records: None)
        source = kafka.make_source([topic])
        assert isinstance(source, KafkaSource)
        await source.open()
        try:
            await pump(source, lambda records: len(records) == 1)
        finally:
            await source.close()
    warnings = [r.getMessage() for r in caplog.records if "CONFWARN" in r.getMessage()]
    deprecated = [line for line in warnings if "socket.blocking.max.ms is deprecated" in line]
    # One line from each: the sink's producer, the source's consumer, the changelog's.
    assert len(deprecated) == 3, warnings
    assert [line for line in warnings if line not in deprecated] == []


@pytest.mark.parametrize("client", ["sink", "source"])
async def test_a_misspelled_setting_still_stops_the_client_at_its_creation(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, client: str
) -> None:
    settings = {"fetch.wait.maxms": 50}
    if client == "sink":
        with pytest.raises(KafkaBrokerError, match="No such configuration property"):
            async with open_connectors(_config(kafka_broker, settings), "edge-1"):
                pass
        return
    source = KafkaSource(kafka_broker.bootstrap, "g", [make_topic(partitions=1)], settings=settings)
    with pytest.raises(KafkaBrokerError, match="No such configuration property"):
        await source.open()
