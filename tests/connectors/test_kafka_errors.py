"""What reaches the log when librdkafka repeats itself, and how failures are classed."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from connectors.kafka import errors
from connectors.kafka.errors import RepeatFilter, translate


def record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("swimstream.kafka.client", level, __file__, 1, message, None, None)


def test_lines_alike_but_for_numbers_pass_once_per_interval_then_say_how_many_were_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    repeats = RepeatFilter(interval=30.0)
    failed = "Connect to ipv4#127.0.0.1:{} failed: Connection refused (after {}ms in state CONNECT)"

    passed = [repeats.filter(record(failed.format(9092, ms))) for ms in range(50)]
    assert passed == [True] + [False] * 49
    other = record("1/1 brokers are down")
    assert repeats.filter(other)  # another kind of line has its own budget
    assert repeats.filter(record(failed.format(9092, 0), logging.WARNING))  # another level too

    now[0] += 31.0
    later = record(failed.format(9092, 3))
    assert repeats.filter(later)
    assert later.getMessage().endswith("(49 more like it since)")
    now[0] += 31.0
    quiet = record(failed.format(9092, 4))
    assert repeats.filter(quiet) and "more like it" not in quiet.getMessage()


def test_the_client_logger_carries_the_filter() -> None:
    assert any(isinstance(f, RepeatFilter) for f in errors.CLIENT_LOG.filters)


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
