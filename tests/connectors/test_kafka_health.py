"""ConnectionHealth's verdict on librdkafka's statistics, from statistics as it sends them."""

from __future__ import annotations

import logging

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
