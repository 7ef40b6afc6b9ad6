"""A coalesced lane change larger than its sink writes is not sent, as one its format
cannot hold: counted and logged, its record completes, the instance goes on.

The flush produced it, and the client refused it: counted as an undelivered record,
which stops the instance; its restart read the record again, set the lane again, and
stopped again, for ever (a record per change failed its callback, and its record went
to the dead letters).
"""

from __future__ import annotations

from pathlib import Path

from connectors.embedded import EmbeddedKafka, free_ports
from connectors.factory import open_connectors
from swimstream import Agent, CommandLane, ValueLane
from swimstream.config import parse_config
from swimstream.service import Service
from tests.support.kafka import QUICK_GROUP_JOIN, produce_json, read_topic
from tests.support.waiting import wait_until


class Grower(Agent):
    """Sets its lane to ``size`` characters."""

    text = ValueLane[str](default="")
    size = CommandLane[int]()

    @size.on_command
    def on_size(self, size: int) -> None:
        self.text.set("x" * size)


async def test_a_coalesced_change_too_large_for_the_sink_dead_letters_its_record(
    tmp_path: Path,
) -> None:
    with EmbeddedKafka() as broker:
        web, mesh = free_ports(2)
        kafka = {"kind": "kafka", "bootstrap": broker.bootstrap, "partitions": 1}
        config = {
            "app": "growing",
            "broker": {**kafka, **QUICK_GROUP_JOIN},
            "agents": {"grower": {"class": f"{__name__}:Grower", "route": "/grower/:id"}},
            "sources": [{"topic": "sizes", "route": "/grower/{key}", "lane": "size"}],
            "sinks": [{"from": "/grower/:id#text", "topic": "texts", "coalesce": "50ms"}],
            "store": {"durable": False},
            "web": {"listen": f"127.0.0.1:{web}"},
            "mesh": {"listen": f"127.0.0.1:{mesh}"},
        }
        service = Service(parse_config(config, {}), open_connectors)
        await service.start()
        try:
            await wait_until(lambda: all(r.ready for r in service.runners), 30)
            produce_json(broker.bootstrap, "sizes", [("a", 3), ("b", 1_500_000), ("c", 2)])
            registry = service.registry
            await wait_until(
                lambda: registry.value("insights_out", topic="texts") == 2, 30, "a and c"
            )
            assert registry.value("lane_sink_unwritable", topic="texts") == 1
            assert service.failure is None and service.failures.count == 0
        finally:
            service.stop()
            await service.close()
        assert service.failure is None
        texts = read_topic(broker.bootstrap, "texts")
        assert sorted((r.key(), r.value()) for r in texts) == [(b"a", b'"xxx"'), (b"c", b'"xx"')]
