"""A stop drains a coalesced lane sink at once, so the records behind its changes commit.

Their records stay in flight until the coalesced record standing for their changes is
delivered, and the stop waited for the records in flight before it stopped the
coalescing task, whose last flush came only then: a stop waited for the next flush, up
to the whole ``coalesce`` interval, and with one longer than the drain, gave up at the
deadline with the records uncommitted (their changes sent all the same after it), to
be read and sent again after the restart.
"""

from __future__ import annotations

from pathlib import Path

from connectors.embedded import EmbeddedKafka
from swimstream import Agent, CommandLane, ValueLane
from tests.streams.one_agent_service import one_agent_service
from tests.support.kafka import committed_offsets, produce_json, read_topic
from tests.support.waiting import wait_until


class Meter(Agent):
    """Keeps the last reading."""

    last = ValueLane[int](default=0)
    reading = CommandLane[int]()

    @reading.on_command
    def on_reading(self, value: int) -> None:
        self.last.set(value)


async def test_a_stop_flushes_a_coalesced_lane_sink_and_commits_its_records(
    tmp_path: Path,
) -> None:
    with EmbeddedKafka() as broker:
        async with one_agent_service(
            broker,
            "metering",
            f"{__name__}:Meter",
            "/meter/:id",
            {"topic": "readings", "route": "/meter/{key}", "lane": "reading"},
            {"from": "/meter/:id#last", "topic": "lasts", "coalesce": "1h"},
            processing={"drain_timeout": "2s"},
        ) as service:
            produce_json(broker.bootstrap, "readings", [("a", 1), ("b", 2), ("a", 3)])
            plane = service.plane
            assert plane is not None
            await wait_until(lambda: plane.get("/meter/a", "last") == 3, 30, "the readings")
            await wait_until(lambda: plane.get("/meter/b", "last") == 2, 30, "the readings")
        assert service.failure is None
        lasts = read_topic(broker.bootstrap, "lasts")
        assert sorted((r.key(), r.value()) for r in lasts) == [(b"a", b"3"), (b"b", b"2")]
        assert committed_offsets(broker.bootstrap, "metering", "readings", 1) == {0: 3}
