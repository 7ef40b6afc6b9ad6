"""A source held for the records in flight flushes the coalesced lane sinks holding them.

A record whose change waits in a coalesced lane sink is in flight until the record
standing for it is delivered. Past the in-flight bound (10,000 records) the source
pauses until half are done, which took the next flush: a source read at most 10,000
records per ``coalesce`` interval (``coalesce: 5s``: 2,000 a second), and stood still
in between.
"""

from __future__ import annotations

from pathlib import Path

from connectors.embedded import EmbeddedKafka, free_ports
from connectors.factory import open_connectors
from swimstream import Agent, CommandLane, CounterLane
from swimstream.config import parse_config
from swimstream.service import Service
from tests.support.kafka import QUICK_GROUP_JOIN, produce_json
from tests.support.waiting import wait_until

READINGS = 30_000


class Tally(Agent):
    """Counts its readings."""

    count = CounterLane()
    reading = CommandLane[int]()

    @reading.on_command
    def on_reading(self, value: int) -> None:
        self.count.add(1)


async def test_a_coalesced_lane_sink_does_not_hold_the_source_until_its_next_flush(
    tmp_path: Path,
) -> None:
    with EmbeddedKafka() as broker:
        web, mesh = free_ports(2)
        kafka = {"kind": "kafka", "bootstrap": broker.bootstrap, "partitions": 1}
        config = {
            "app": "tallying",
            "broker": {**kafka, **QUICK_GROUP_JOIN},
            "agents": {"tally": {"class": f"{__name__}:Tally", "route": "/tally/:id"}},
            "sources": [{"topic": "readings", "route": "/tally/{key}", "lane": "reading"}],
            "sinks": [{"from": "/tally/:id#count", "topic": "counts", "coalesce": "1h"}],
            "store": {"durable": False},
            "web": {"listen": f"127.0.0.1:{web}"},
            "mesh": {"listen": f"127.0.0.1:{mesh}"},
        }
        service = Service(parse_config(config, {}), open_connectors)
        await service.start()
        try:
            await wait_until(lambda: all(r.ready for r in service.runners), 30)
            produce_json(broker.bootstrap, "readings", ((f"t{n % 10}", n) for n in range(READINGS)))
            plane = service.plane
            assert plane is not None

            def tallied() -> int:
                return sum(plane.get(f"/tally/t{n}", "count") or 0 for n in range(10))

            await wait_until(lambda: tallied() == READINGS, 60, "every reading")
        finally:
            service.stop()
            await service.close()
        assert service.failure is None
