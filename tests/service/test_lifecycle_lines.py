"""The service's start and stop lines say what is true of this instance."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka, free_ports
from connectors.factory import open_connectors
from swimstream.config import parse_config
from swimstream.service import Service
from tests.support.towers import TOWERS_AGENTS
from tests.support.waiting import wait_until


def one_topic_app(bootstrap: str, app: str) -> dict[str, Any]:
    web, mesh = free_ports(2)
    return {
        "app": app,
        "broker": {"kind": "kafka", "bootstrap": bootstrap, "partitions": 1},
        "agents": TOWERS_AGENTS,
        "sources": [{"topic": f"{app}.readings", "route": "/device/{key}", "lane": "reading"}],
        "store": {"durable": False},
        "web": {"listen": f"127.0.0.1:{web}"},
        "mesh": {"listen": f"127.0.0.1:{mesh}"},
    }


def service_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "swimstream.service"]


async def test_one_source_topic_and_one_partition_read_in_the_singular(
    kafka_broker: EmbeddedKafka, caplog: pytest.LogCaptureFixture
) -> None:
    app = "lines-one"
    kafka_broker.create_topic(f"{app}.readings", partitions=1)
    service = Service(parse_config(one_topic_app(kafka_broker.bootstrap, app), {}), open_connectors)
    with caplog.at_level(logging.INFO):
        await service.start()
        try:
            runner = service.runners[0]
            await wait_until(lambda: runner.ready, 60)
            assert service.health.readiness().checks[runner.name] == "1 partition"
        finally:
            service.stop()
            await service.close()
    [running] = [line for line in service_lines(caplog) if " running as " in line]
    assert ": 3 agent types, 1 source topic, web on " in running
