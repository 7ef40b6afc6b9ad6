"""The service's start and stop lines say what is true of this instance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka, free_ports
from connectors.factory import open_connectors
from swimstream.config import AppConfig, parse_config
from swimstream.errors import BrokerError
from swimstream.service import ProtocolClients, Service
from swimstream.streams.connector import DeliveryCallback
from tests.support.kafka import QUICK_GROUP_JOIN, produce_json
from tests.support.towers import TOWERS_AGENTS, alerts_sink
from tests.support.waiting import wait_until


def one_topic_app(bootstrap: str, app: str) -> dict[str, Any]:
    web, mesh = free_ports(2)
    return {
        "app": app,
        "broker": {"kind": "kafka", "bootstrap": bootstrap, "partitions": 1, **QUICK_GROUP_JOIN},
        "agents": TOWERS_AGENTS,
        "sources": [{"topic": f"{app}.readings", "route": "/device/{key}", "lane": "reading"}],
        "sinks": [alerts_sink(app)],
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
    assert "stopping: draining work in flight" in service_lines(caplog)


@asynccontextmanager
async def no_broker(
    config: AppConfig, instance_id: str
) -> AsyncIterator[dict[str, ProtocolClients]]:
    """A broker that never answers (as open_connectors reports one)."""
    raise BrokerError("nobody listens on 127.0.0.1:9", unreachable=True)
    yield {}  # (never reached: makes this a generator)


async def test_stopped_while_waiting_for_its_broker_it_says_so_not_that_it_drains(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing is in flight before the start finished: "draining" was untrue there."""
    service = Service(parse_config(one_topic_app("127.0.0.1:9", "lines-early"), {}), no_broker)
    with caplog.at_level(logging.INFO):
        running = asyncio.create_task(service.run())
        await wait_until(
            lambda: any("waiting for the broker" in line for line in service_lines(caplog))
        )
        service.stop()
        await asyncio.wait_for(running, 10)
    lines = service_lines(caplog)
    assert "stopping before the start finished" in lines
    assert "stopping: draining work in flight" not in lines


async def test_keys_not_built_yet_are_warned_about_once_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`store.standby: 2` and a list of mesh members were accepted without a word, and
    nothing of either ran."""
    app = one_topic_app("127.0.0.1:9", "lines-unbuilt")
    app["store"] = {"durable": False, "standby": 2}
    app["mesh"] = {**app["mesh"], "members": ["10.0.0.1:7001", "10.0.0.2:7001"]}
    service = Service(parse_config(app, {}), no_broker)
    with caplog.at_level(logging.INFO):
        running = asyncio.create_task(service.run())
        await wait_until(lambda: any("waiting for the broker" in x for x in service_lines(caplog)))
        service.stop()
        await asyncio.wait_for(running, 10)
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "swimstream.service"
        and r.levelno == logging.WARNING
        and "has no effect yet" in r.getMessage()
    ]
    assert warned == [
        f"mesh.listen: {app['mesh']['listen']} has no effect yet (not built): nothing "
        "listens on it",
        "mesh.members: 10.0.0.1:7001, 10.0.0.2:7001 has no effect yet (not built): no "
        "instance dials another",
        "store.standby: 2 has no effect yet (not built): no standby replicas run",
    ]


class _UndeliveredSink:
    """The Kafka sink, except that the broker never acknowledges a record of ``topic``
    (as in an outage): its delivery report is an error."""

    def __init__(self, sink: Any, topic: str) -> None:
        self._sink, self._topic = sink, topic

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        on_delivery: DeliveryCallback | None = None,
        *,
        partition: int | None = None,
    ) -> None:
        if topic == self._topic and on_delivery is not None:
            asyncio.get_running_loop().call_soon(on_delivery, TimeoutError("message timed out"))
            return
        self._sink.produce(topic, key, value, headers, on_delivery, partition=partition)


async def test_insights_never_delivered_in_a_burst_are_all_counted_by_the_stop(
    kafka_broker: EmbeddedKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """The first failure stops the service, and the records in flight fail with it: the
    log said one, the count of the others held back by the rate limit was never told."""
    app = "lines-undelivered"
    kafka_broker.create_topic(f"{app}.readings", partitions=1)

    @asynccontextmanager
    async def failing_alerts(
        config: AppConfig, instance_id: str
    ) -> AsyncIterator[dict[str, ProtocolClients]]:
        async with open_connectors(config, instance_id) as clients:
            clients["kafka"].sink = _UndeliveredSink(clients["kafka"].sink, f"{app}.alerts")
            yield clients

    service = Service(parse_config(one_topic_app(kafka_broker.bootstrap, app), {}), failing_alerts)
    hot = [(f"d{n}", {"ts": 1, "temp": 99, "tower": "t"}) for n in range(5)]
    with caplog.at_level(logging.INFO):
        running = asyncio.create_task(service.run())
        await wait_until(lambda: bool(service.runners) and service.runners[0].ready, 60)
        produce_json(kafka_broker.bootstrap, f"{app}.readings", hot)
        await asyncio.wait_for(running, 60)
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.sinks"]
    assert service.failures.count == 5
    assert len(lines) == 2, lines
    assert lines[1].endswith("(3 more since the last report)"), lines


async def test_readyz_is_red_while_the_broker_is_frozen_and_green_once_it_answers(
    kafka_broker: EmbeddedKafka,
) -> None:
    """A broker that keeps its sockets but answers nothing: the instance cannot follow
    its partitions, so it is not ready; back, it is ready at once (caught up before)."""
    app = "lines-frozen"
    kafka_broker.create_topic(f"{app}.readings", partitions=1)
    service = Service(parse_config(one_topic_app(kafka_broker.bootstrap, app), {}), open_connectors)
    await service.start()
    try:
        await wait_until(lambda: service.health.readiness().ok, 60)
        kafka_broker.pause()
        try:
            await wait_until(lambda: not service.health.readiness().ok, 20)
            assert service.health.readiness().checks[service.runners[0].name] == (
                "broker unreachable; retrying"
            )
            assert service.health.health().ok  # (alive: no restart for it)
        finally:
            kafka_broker.resume()
        await wait_until(lambda: service.health.readiness().ok, 30)
    finally:
        service.stop()
        await service.close()
