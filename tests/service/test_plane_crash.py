"""A plane whose agents' loop fails stops the service, and nothing is committed past.

The service watched its own tasks only: with the scheduler's loop ended (by a fault of
the framework: a callback's own failure no longer ends it, see
tests/runtime/test_hostile_failures.py), sources read on, records queued for agents that
would never take a turn, and health named the scheduler while the instance ran on.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka
from connectors.factory import open_connectors
from swimstream.config import parse_config
from swimstream.service import Service
from tests.service.test_lifecycle_lines import one_topic_app
from tests.support.kafka import committed_offsets, produce_json
from tests.support.waiting import wait_until

READING = {"device": "d0", "tower": "t0", "temp": 20.0, "ts": 1}


async def test_a_plane_that_fails_stops_the_service_and_commits_nothing_past(
    kafka_broker: EmbeddedKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = "plane-crash"
    topic = f"{app}.readings"
    kafka_broker.create_topic(topic, partitions=1)
    service = Service(parse_config(one_topic_app(kafka_broker.bootstrap, app), {}), open_connectors)
    await service.start()
    try:
        await wait_until(lambda: service.runners[0].ready, 60)
        assert service.plane is not None
        scheduler = service.plane._scheduler

        def fault(*_: Any) -> int:
            raise RuntimeError("a fault in the agents' loop")

        monkeypatch.setattr(scheduler, "run_now", lambda *_: False)  # every record queues
        monkeypatch.setattr(scheduler, "drain", fault)
        produce_json(kafka_broker.bootstrap, topic, [(f"d{n}".encode(), READING) for n in range(5)])
        await wait_until(lambda: service.failure is not None, 30, "the service to fail")
        assert str(service.failure) == "a fault in the agents' loop"
        assert not service.health.health().ok
    finally:
        service.stop()
        await service.close()
    assert committed_offsets(kafka_broker.bootstrap, app, topic, 1) == {}
