"""Reads of demand lanes over HTTP: their value is computed by ``on_cue`` at the read."""

from __future__ import annotations

import logging

import pytest

from swimstream import Agent, CommandLane, DemandValueLane, ValueLane
from tests.web.harness import ServeFactory


class Gauge(Agent):
    """A demand lane that cannot be computed while the level is negative."""

    level = ValueLane[int](default=0)
    set_level = CommandLane[int]()
    doubled = DemandValueLane[int]()

    @set_level.on_command
    def on_set_level(self, value: int) -> None:
        self.level.set(value)

    @doubled.on_cue
    def on_doubled(self) -> int:
        if self.level.get() < 0:
            raise ValueError("no double of a negative level")
        return 2 * self.level.get()


async def test_an_on_cue_that_raises_is_a_500_naming_it_and_one_log_line_per_interval(
    serve: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The read fails, not the server: reported as any callback's failure, at most one
    line per 10 s for its site, so a client reading again and again cannot flood the log."""
    async with serve(routes={"/gauge/:id": Gauge}) as served:
        assert await served.post_json("/gauge/1?lane=set_level", 4) == (200, {"ok": True})
        assert await served.get_json("/gauge/1?lane=doubled") == (200, 8)
        assert (await served.post_json("/gauge/1?lane=set_level", -1))[0] == 200
        with caplog.at_level(logging.ERROR):
            for _ in range(5):
                status, body = await served.get_json("/gauge/1?lane=doubled")
                assert status == 500
                assert body["error"] == (
                    "on_cue of lane 'doubled' on agent /gauge/1 raised: "
                    "ValueError: no double of a negative level"
                )
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert errors[0].getMessage().startswith("on_cue of lane 'doubled' on agent /gauge/1")
        assert served.plane.statistics().callback_failures == 5
        assert await served.get_json("/gauge/1?lane=level") == (200, -1)
