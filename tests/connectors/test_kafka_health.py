"""ConnectionHealth's verdict on librdkafka's statistics, from statistics as it sends them."""

from __future__ import annotations

import json
import logging

import pytest
from confluent_kafka import KafkaError

from connectors.kafka.health import ConnectionHealth


def stalled(waiting: int) -> dict[str, object]:
    """Statistics of a broker leading a held partition that owes ``waiting`` answers."""
    broker = {"state": "UP", "toppars": {"t-0": {}}, "waitresp_cnt": waiting, "rxidle": 9_000_000}
    return {"brokers": {"127.0.0.1:9092/1": broker}}


def test_a_stalled_broker_is_named_with_its_unanswered_requests() -> None:
    health = ConnectionHealth(logging.getLogger("test"), "a source", stall_seconds=3.0)
    assert health.judge(stalled(1)) == (
        "broker 127.0.0.1:9092/1 has not answered 1 request for 9.0 s"
    )
    assert health.judge(stalled(2)) == (
        "broker 127.0.0.1:9092/1 has not answered 2 requests for 9.0 s"
    )


def gone() -> dict[str, object]:
    """Statistics of a group member whose only broker was killed: librdkafka forgot the
    partitions' leader and the coordinator, and every broker left is ``INIT``
    (as librdkafka 2.x sends them, one second after the kill)."""
    idle = {"state": "INIT", "toppars": {}, "waitresp_cnt": 0, "rxidle": -1}
    return {"brokers": {"127.0.0.1:9092/bootstrap": idle, "GroupCoordinator": dict(idle)}}


def test_a_client_with_no_connection_up_reaches_no_broker() -> None:
    health = ConnectionHealth(logging.getLogger("test"), "a source", stall_seconds=3.0)
    assert health.judge(gone()) == (
        "no connection to a broker is up "
        "(broker 127.0.0.1:9092/bootstrap INIT, the group coordinator INIT)"
    )


def test_a_dead_broker_is_reported_once_not_every_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused connection clears ``connected``; the statistics that follow every
    second must not set it again (they said "brokers answer again", then the next
    refusal "lost contact": two lines a second while the broker was down)."""
    health = ConnectionHealth(logging.getLogger("test"), "a source", stall_seconds=3.0)
    refused = KafkaError(KafkaError._TRANSPORT, "Connect to 127.0.0.1:9092 failed: refused")
    with caplog.at_level(logging.INFO, logger="test"):
        for _ in range(5):
            health.on_error(refused)
            health.on_stats(json.dumps(gone()))
            assert not health.connected
    changes = [r.getMessage() for r in caplog.records if "contact" in r.getMessage()]
    changes += [r.getMessage() for r in caplog.records if "answer again" in r.getMessage()]
    assert len(changes) == 1, changes
