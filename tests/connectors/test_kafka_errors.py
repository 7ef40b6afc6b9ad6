"""What reaches the log when librdkafka repeats itself, and how failures are classed."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from connectors.kafka import errors
from connectors.kafka.errors import ErrorLog, RepeatFilter, translate


def record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("swimstream.kafka.client", level, __file__, 1, message, None, None)


def test_lines_alike_but_for_numbers_pass_once_per_interval_then_count_the_dropped() -> None:
    now = [100.0]
    repeats = RepeatFilter(interval=30.0, clock=lambda: now[0])
    failed = "Connect to ipv4#127.0.0.1:{} failed: Connection refused (after {}ms in state CONNECT)"

    passed = [repeats.filter(record(failed.format(9092, ms))) for ms in range(50)]
    assert passed == [True] + [False] * 49
    other = record("1/1 brokers are down")
    assert repeats.filter(other)  # another kind of line has its own budget
    assert repeats.filter(record(failed.format(9092, 0), logging.WARNING))  # another level too

    now[0] += 31.0
    later = record(failed.format(9092, 3))
    assert repeats.filter(later)
    assert later.getMessage().endswith("(49 more like it since the last report)")
    now[0] += 31.0
    quiet = record(failed.format(9092, 4))
    assert repeats.filter(quiet) and "more like it" not in quiet.getMessage()


def test_a_full_memory_of_kinds_keeps_the_count_of_a_kind_it_knows() -> None:
    """The memory started afresh whenever a line passed with it full, a kind it knew
    too, and that line lost the count of those dropped before it."""
    now = [100.0]
    repeats = RepeatFilter(interval=30.0, clock=lambda: now[0])
    repeats.MAX_KINDS = 2
    assert [repeats.filter(record("broker down")) for _ in range(4)] == [True] + [False] * 3
    assert repeats.filter(record("another line"))  # (the memory is full)
    now[0] += 30.0
    again = record("broker down")
    assert repeats.filter(again)
    assert again.getMessage() == "broker down (3 more like it since the last report)"
    assert repeats.filter(record("a third kind"))  # (a new kind starts the memory afresh)


def test_client_error_events_are_logged_once_per_kind_and_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    errors_log = ErrorLog(logging.getLogger("swimstream.kafka"), "sink", 30.0, lambda: now[0])
    down, refused = KafkaError(KafkaError._ALL_BROKERS_DOWN), KafkaError(KafkaError._AUTHENTICATION)
    with caplog.at_level(logging.WARNING, logger="swimstream.kafka"):
        for _ in range(3):
            errors_log.report(down)
        errors_log.report(refused)
        now[0] += 30.0
        errors_log.report(down)
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.kafka"]
    assert len(lines) == 3 and "(_AUTHENTICATION)" in lines[1]
    assert lines[0].startswith("sink: Local: All broker connections are down (_ALL_BROKERS_DOWN)")
    assert "more like it" not in lines[0]
    assert lines[2].endswith("from here? (2 more like it since the last report)")


def test_the_client_logger_carries_the_filter() -> None:
    assert any(isinstance(f, RepeatFilter) for f in errors.CLIENT_LOG.filters)


def test_a_failed_oauth_token_request_is_logged_without_the_url_s_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """librdkafka logs, as an error, the token endpoint URL whole: its user part and a
    secret in its query string too (it redacts only the settings it knows as secrets)."""
    url = "http://svc:Hunter2-pw@127.0.0.1:1/token?client_secret=Hunter2-qs&scope=kafka"
    producer = Producer(
        {
            "bootstrap.servers": "127.0.0.1:1",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER",
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.id": "svc",
            "sasl.oauthbearer.client.secret": "Hunter2-cs",
            "sasl.oauthbearer.token.endpoint.url": url,
            "logger": errors.CLIENT_LOG,
        }
    )
    caplog.set_level(logging.DEBUG, logger=errors.CLIENT_LOG.name)
    deadline = time.monotonic() + 60
    while "OIDC" not in caplog.text and time.monotonic() < deadline:
        producer.poll(0.1)  # (librdkafka's log lines are delivered by polls)
    lines = [r.getMessage() for r in caplog.records if "OIDC" in r.getMessage()]
    assert lines, caplog.text
    assert "Hunter2" not in caplog.text
    assert "http://[hidden]@127.0.0.1:1/token?client_secret=[hidden]&scope=kafka" in lines[0]


@pytest.mark.parametrize(
    ("code", "unreachable"),
    [
        (KafkaError._TRANSPORT, True),
        (KafkaError._ALL_BROKERS_DOWN, True),
        (KafkaError._RESOLVE, True),
        (KafkaError._AUTHENTICATION, False),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, False),
    ],
)
def test_only_a_broker_that_does_not_answer_is_unreachable(code: int, unreachable: bool) -> None:
    error = translate(KafkaException(KafkaError(code)), "opening a sink on Kafka at h:9092")
    assert error.unreachable is unreachable
    assert "opening a sink on Kafka at h:9092" in str(error)
