"""A stopping service closes every broker client before its broker stops.

Tansu, the embedded Kafka, waits 5 s at SIGTERM for the connections still open, so one
client left open (the admin was, for the whole run) had it killed after its 1 s grace at
every stop: a second added to every stop of ``run`` and ``demo`` on the embedded broker.
With every client closed first, Tansu exits by itself, with status 0.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka, free_ports
from connectors.factory import open_connectors
from swimstream.config import parse_config
from swimstream.service import Service
from tests.support.kafka import QUICK_GROUP_JOIN
from tests.support.towers import TOWERS_AGENTS
from tests.support.waiting import wait_until


def durable_app(broker: dict[str, Any], store: Path) -> dict[str, Any]:
    """Every kind of broker client at once: a source, a transactional sink, an admin and
    the changelog reader (durable state, exactly-once: the defaults)."""
    web, mesh = free_ports(2)
    return {
        "app": "stopping",
        "broker": {**broker, "partitions": 1},
        "agents": TOWERS_AGENTS,
        "sources": [{"topic": "readings", "route": "/device/{key}", "lane": "reading"}],
        "sinks": [{"publish": "alerts", "topic": "device-alerts"}],
        "store": {"path": str(store)},
        "web": {"listen": f"127.0.0.1:{web}"},
        "mesh": {"listen": f"127.0.0.1:{mesh}"},
    }


async def test_a_stopped_service_leaves_no_client_connected_to_its_broker(
    tmp_path: Path,
) -> None:
    with EmbeddedKafka() as broker:
        # As the service joins the embedded broker: a dynamic member, for a short join.
        kafka = {"kind": "kafka", "bootstrap": broker.bootstrap, **QUICK_GROUP_JOIN}
        config = durable_app(kafka, tmp_path)
        service = Service(parse_config(config, {}), open_connectors)
        await service.start()
        try:
            await wait_until(lambda: all(runner.ready for runner in service.runners), 30)
        finally:
            service.stop()
            await service.close()
    assert broker.exit_code == 0, "killed after its grace: a client was still connected"


async def test_a_service_stops_its_embedded_broker_without_killing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = durable_app({"kind": "embedded"}, tmp_path)
    service = Service(parse_config(config, {}), open_connectors)
    with caplog.at_level(logging.DEBUG, logger="swimstream.embedded"):
        await service.start()
        service.stop()
        await service.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.embedded"]
    assert [line for line in lines if line.endswith(" stopped")], lines
    assert not [line for line in lines if "killing it" in line], lines
