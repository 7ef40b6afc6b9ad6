"""A coalesced lane change larger than its sink writes is not sent, as one its format
cannot hold: counted and logged, its record completes, the instance goes on.

The flush produced it, and the client refused it: counted as an undelivered record,
which stops the instance; its restart read the record again, set the lane again, and
stopped again, for ever (a record per change failed its callback, and its record went
to the dead letters).
"""

from __future__ import annotations

from pathlib import Path

from connectors.embedded import EmbeddedKafka
from swimstream import Agent, CommandLane, ValueLane
from tests.streams.one_agent_service import one_agent_service
from tests.support.kafka import produce_json, read_topic
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
        async with one_agent_service(
            broker,
            "growing",
            f"{__name__}:Grower",
            "/grower/:id",
            {"topic": "sizes", "route": "/grower/{key}", "lane": "size"},
            {"from": "/grower/:id#text", "topic": "texts", "coalesce": "50ms"},
        ) as service:
            produce_json(broker.bootstrap, "sizes", [("a", 3), ("b", 1_500_000), ("c", 2)])
            registry = service.registry
            await wait_until(
                lambda: registry.value("insights_out", topic="texts") == 2, 30, "a and c"
            )
            assert registry.value("lane_sink_unwritable", topic="texts") == 1
            assert service.failure is None and service.failures.count == 0
        assert service.failure is None
        texts = read_topic(broker.bootstrap, "texts")
        assert sorted((r.key(), r.value()) for r in texts) == [(b"a", b'"xxx"'), (b"c", b'"xx"')]
