"""A stopping service closes every broker client before its broker stops, and stops its
agents without dumping them anywhere.

Tansu, the embedded Kafka, waits 5 s at SIGTERM for the connections still open, so one
client left open (the admin was, for the whole run) had it killed after its 1 s grace at
every stop: a second added to every stop of ``run`` and ``demo`` on the embedded broker.
With every client closed first, Tansu exits by itself, with status 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors.embedded import EmbeddedKafka, free_ports
from connectors.factory import open_connectors
from swimstream import Agent, CommandLane
from swimstream.config import parse_config
from swimstream.service import Service
from tests.support.kafka import QUICK_GROUP_JOIN, produce_json
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


class Stopping(Agent):
    """Notes its own ``on_stop``."""

    stopped: ClassVar[list[str]] = []
    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        pass

    def on_stop(self) -> None:
        Stopping.stopped.append(self.node_uri)


async def test_an_in_memory_service_stops_its_agents_without_putting_them_away(
    tmp_path: Path,
) -> None:
    """State in memory ends with the process: dumping every agent into the plane's store
    at the stop was work for nothing, a second per 100,000 agents (a million small
    twins would have broken the drain's 10 s)."""
    web, mesh = free_ports(2)
    config = {
        "app": "in-memory",
        "broker": {"kind": "embedded", "partitions": 1},
        "agents": {"stopping": {"class": f"{__name__}:Stopping", "route": "/stopping/:id"}},
        "sources": [{"topic": "readings", "route": "/stopping/{key}", "lane": "reading"}],
        "store": {"durable": False, "path": str(tmp_path)},
        "web": {"listen": f"127.0.0.1:{web}"},
        "mesh": {"listen": f"127.0.0.1:{mesh}"},
    }
    Stopping.stopped.clear()
    service = Service(parse_config(config, {}), open_connectors)
    await service.start()
    plane = service.plane
    assert plane is not None
    try:
        for n in range(50):
            plane.submit(f"/stopping/{n}", "reading", {})
        await plane.settle()
    finally:
        service.stop()
        await service.close()
    statistics = plane.statistics()
    assert sorted(Stopping.stopped) == sorted(f"/stopping/{n}" for n in range(50))
    assert (statistics.passivations, statistics.stored_agents) == (0, 0)


class Slow(Agent):
    """Takes 20 ms over each reading."""

    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    async def on_reading(self, event: dict[str, Any]) -> None:
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("durable", [False, True], ids=["in-memory", "durable"])
async def test_a_drain_ends_by_its_timeout_with_work_left_and_takes_no_cut_of_it(
    kafka_broker: EmbeddedKafka,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    durable: bool,
) -> None:
    """Five seconds of queued work for one slow agent, a one-second drain: the close
    used to finish the work first, whatever the timeout (past which `docker stop`
    kills). With durable state no final checkpoint may cut it half done: the last
    committed one stands, and the group replays from it."""
    app = f"drain-{durable}"
    kafka_broker.create_topic(f"{app}.readings", partitions=1)
    web, mesh = free_ports(2)
    config = {
        "app": app,
        "broker": {"kind": "kafka", "bootstrap": kafka_broker.bootstrap, **QUICK_GROUP_JOIN},
        "agents": {"slow": {"class": f"{__name__}:Slow", "route": "/slow/:id"}},
        "sources": [{"topic": f"{app}.readings", "route": "/slow/{key}", "lane": "reading"}],
        "processing": {"guarantee": "at-least-once", "drain_timeout": "1s"},
        "store": {"durable": durable, "path": str(tmp_path)},
        "web": {"listen": f"127.0.0.1:{web}"},
        "mesh": {"listen": f"127.0.0.1:{mesh}"},
    }
    service = Service(parse_config(config, {}), open_connectors)
    await service.start()
    try:
        runner = service.runners[0]
        await wait_until(lambda: runner.ready, 60, "ready")
        produce_json(kafka_broker.bootstrap, f"{app}.readings", [("one", {})] * 250)
        await wait_until(lambda: sum(runner.book.routed_positions().values()) >= 250, 30, "routed")
        checkpoints = service.durability.checkpointer.stats.checkpoints if durable else 0  # type: ignore[union-attr]
    finally:
        service.stop()
        started = time.monotonic()
        await service.close()
    took = time.monotonic() - started
    assert took < 1.0 + 2.0, f"the drain took {took:.1f} s"  # (clients close in the rest)
    assert service.failure is None
    assert "still queued for agents at the drain deadline" in caplog.text
    if durable:
        assert service.durability is not None and service.durability.checkpointer is not None
        assert service.durability.checkpointer.stats.checkpoints == checkpoints  # no cut
