"""A source held for the records in flight flushes the coalesced lane sinks holding them.

A record whose change waits in a coalesced lane sink is in flight until the record
standing for it is delivered. Past the in-flight bound (10,000 records) the source
pauses until half are done, which took the next flush: a source read at most 10,000
records per ``coalesce`` interval (``coalesce: 5s``: 2,000 a second), and stood still
in between.
"""

from __future__ import annotations

from pathlib import Path

from connectors.embedded import EmbeddedKafka
from swimstream import Agent, CommandLane, CounterLane
from tests.streams.one_agent_service import one_agent_service
from tests.support.kafka import produce_json
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
        async with one_agent_service(
            broker,
            "tallying",
            f"{__name__}:Tally",
            "/tally/:id",
            {"topic": "readings", "route": "/tally/{key}", "lane": "reading"},
            {"from": "/tally/:id#count", "topic": "counts", "coalesce": "1h"},
        ) as service:
            produce_json(broker.bootstrap, "readings", ((f"t{n % 10}", n) for n in range(READINGS)))
            plane = service.plane
            assert plane is not None

            def tallied() -> int:
                return sum(plane.get(f"/tally/t{n}", "count") or 0 for n in range(10))

            await wait_until(lambda: tallied() == READINGS, 60, "every reading")
        assert service.failure is None
