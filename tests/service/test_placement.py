"""Agents made on an instance that does not hold their shard are counted, and said."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from swimstream import Agent, CommandLane
from swimstream.runtime import Plane
from swimstream.service.placement import WARN_INTERVAL, Placement
from swimstream.streams import TopicPartition

SHARDS = {"/tower/mine": 0, "/tower/theirs": 1, "/tower/other": 1}


class Tower(Agent):
    attach = CommandLane[str]()


def placement_holding(*partitions: int, clock: Callable[[], float] = time.monotonic) -> Placement:
    return Placement(
        SHARDS.__getitem__,
        ["readings"],
        lambda: [TopicPartition("readings", p) for p in partitions],
        clock=clock,
    )


async def test_agents_made_for_another_instance_s_shards_are_counted_and_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    placement = placement_holding(0)
    caplog.set_level(logging.WARNING, "swimstream.placement")
    async with Plane({"/tower/:id": Tower}, on_activate=placement.note_made) as plane:
        for node in ("/tower/mine", "/tower/theirs", "/tower/other", "/tower/theirs"):
            await plane.command(node, "attach", "/device/1")
        await plane.settle()
    assert placement.misplaced == 2  # made once each; /tower/mine is at home here
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [  # one now, the next after WARN_INTERVAL with the count since
        "1 agent made on this instance for shards another instance holds, the last "
        "/tower/theirs (agents that command or link agents of other partitions need a "
        "single instance until the mesh forwards between instances)"
    ]


async def test_the_next_warning_counts_every_agent_since_the_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1_000.0]
    placement = placement_holding(0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, "swimstream.placement")
    placement.note_made("/tower/theirs")
    placement.note_made("/tower/other")
    now[0] += WARN_INTERVAL - 1.0
    placement.note_made("/tower/theirs")
    assert [r.getMessage().split(" made")[0] for r in caplog.records] == ["1 agent"]
    now[0] += 1.0
    placement.note_made("/tower/other")
    messages = [r.getMessage().split(" made")[0] for r in caplog.records]
    assert messages == ["1 agent", "3 agents"]


def test_nothing_is_counted_before_the_group_assigns_a_partition() -> None:
    placement = placement_holding()
    placement.note_made("/tower/theirs")
    assert placement.misplaced == 0
