"""Secrets in ``broker.settings`` appear nowhere a running instance writes or serves."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Message

from connectors.embedded import EmbeddedKafka
from integration.support import Instance, wait_until
from tests.support.kafka import produce_json, read_topic
from tests.support.towers import TOWERS_AGENTS

SECRET = "Hunter2-integration-s3cret"


def test_a_password_from_the_environment_shows_in_no_log_line_or_web_answer(
    kafka_broker: EmbeddedKafka,
    start_instance: Callable[..., Instance],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every log level, librdkafka's configuration dump included (``debug: conf``), the
    health, metrics and dashboard answers, and the dead-letter topic's headers."""
    monkeypatch.setenv("KAFKA_PASSWORD", SECRET)
    monkeypatch.setenv("SWIMSTREAM_TEST_LOG_LEVEL", "debug")
    app = "secrets"
    kafka_broker.create_topic(f"{app}.readings", partitions=2)
    secret = "${KAFKA_PASSWORD}"
    settings = {
        "security.protocol": "PLAINTEXT",  # (the embedded broker speaks nothing else)
        "sasl.username": "svc",
        "sasl.password": secret,
        "ssl.key.password": secret,
        "ssl.keystore.password": secret,
        "sasl.oauthbearer.client.secret": secret,
        "debug": "conf,security",
    }
    config = {
        "app": app,
        "broker": {"kind": "kafka", "bootstrap": kafka_broker.bootstrap, "settings": settings},
        "agents": TOWERS_AGENTS,
        "sources": [{"topic": f"{app}.readings", "route": "/device/{key}", "lane": "reading"}],
        "sinks": [{"publish": "alerts", "topic": f"{app}.alerts"}],
        "processing": "at-least-once",
    }
    instance = start_instance(config)
    produce_json(
        kafka_broker.bootstrap,
        f"{app}.readings",
        [("d1", {"device": "d1", "tower": "t1", "temp": 99.0, "ts": 1}), ("d2", b"not json")],
    )
    wait_until(lambda: instance.metric("swimstream_dead_letters_total") >= 1, 60, "the dead letter")
    # (Counted as it is handed to the producer: in the topic a moment later, and never if
    # it is not sent.)
    dead_letters: list[Message] = []

    def in_the_topic() -> bool:
        dead_letters[:] = read_topic(kafka_broker.bootstrap, f"{app}.dead-letter")
        return bool(dead_letters)

    wait_until(in_the_topic, 30, "the dead letter in its topic")
    answers = [
        instance.request("GET", path)
        for path in ("/healthz", "/readyz", "/_stats", "/_routes", "/_agents")
    ]
    metrics = instance.metrics()
    instance.terminate()
    assert instance.wait_exit(30) == 0
    log = instance.log_path.read_text()

    assert "sasl.password = [redacted]" in log  # (librdkafka's dump was logged)
    assert SECRET not in log
    assert all(SECRET not in repr(answer) for answer in answers)
    assert all(SECRET not in name for name in metrics)
    assert dead_letters
    for record in dead_letters:
        assert SECRET.encode() not in repr(record.headers()).encode()
