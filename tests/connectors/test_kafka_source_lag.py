"""Consumer lag as a runner over a real Kafka source reports it: records fetched but
not routed yet count as behind."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.embedded import EmbeddedKafka, TopicFactory
from swimstream import Agent, CommandLane, CounterLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.streams.connector import TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.testing import MemorySink, open_plane
from tests.connectors.conftest import SourceFactory
from tests.support.kafka import produce_json
from tests.support.waiting import wait_until


class Gated(Agent):
    """Handles a record each time the test opens its gate."""

    work = CommandLane[dict[str, Any]]()
    done = CounterLane()
    gate: asyncio.Semaphore

    @work.on_command
    async def on_work(self, record: dict[str, Any]) -> None:
        await self.gate.acquire()
        self.done.add(1)


async def test_records_held_behind_a_full_mailbox_count_as_lag(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_source: SourceFactory
) -> None:
    # 40 records for one slow agent (mailbox of 4): one fetch brings them all, the
    # source's position is past them, but most wait unrouted behind the full mailbox.
    topic = make_topic(partitions=1)
    produce_json(kafka_broker.bootstrap, topic, (("slow", {"n": n}) for n in range(40)))
    tp = TopicPartition(topic, 0)
    Gated.gate = asyncio.Semaphore(0)
    source = await open_source([topic])
    async with open_plane({"/g/:id": Gated}, mailbox_capacity=4) as plane:
        registry = MetricsRegistry()
        route = SourceRoute(topic, RouteTemplate.parse("/g/{key}"), "work")
        dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]
        router = RecordRouter(plane, [route], dead, registry)
        runner = SourceRunner("test", source, router, registry)
        task = asyncio.create_task(runner.run())
        try:
            await wait_until(
                lambda: runner.held_back.records > 0 and source.positions().get(tp) == 40,
                20,
                "the partition held back, every record fetched",
            )
            held = runner.held_back.records
            assert runner.lag()[tp] >= held, (runner.lag(), held)
            assert not runner.ready  # (not caught up: those records are not routed)
            for _ in range(100):
                Gated.gate.release()
            await wait_until(lambda: plane.get("/g/slow", "done") == 40, 20, "all routed")
            await wait_until(lambda: runner.lag().get(tp) == 0, 20, "lag back to 0")
        finally:
            for _ in range(100):
                Gated.gate.release()
            await runner.stop(5)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
