"""A record acked by its partition's inline ack commits as one with its own RecordAck.

A record of a topic with one route takes its partition's ``InlineAck`` rather than a
``RecordAck`` of its own (see :mod:`swimstream.streams.tracking`). Whatever its command
does (completes, forks a command to an agent that may be busy, publishes, fails, runs
asynchronously, or waits behind an earlier one in its agent's mailbox), the committable
offset must be what it always was: the oldest offset whose work is unfinished, and never
past it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import Plane
from swimstream.streams.connector import TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from swimstream.streams.tracking import PartitionTracker
from swimstream.testing import MemoryRecord, MemorySink

Origin = tuple[int, int]
"""(partition, offset) of a record."""


class Journal:
    """What the agents did, by the record it was for."""

    def __init__(self) -> None:
        self.ran: set[Origin] = set()  # the record's own callback ended (or raised)
        self.forwarded: set[Origin] = set()  # the command it sent ran
        self.polled: set[Origin] = set()  # ran before a poll: its insight or dead letter is out


JOURNAL = Journal()


class Worker(Agent):
    """Does what each record says: nothing, publish, fail, command another, or wait."""

    step = CommandLane[dict[str, Any]]()
    forwarded = CommandLane[list[int]]()

    @step.on_command
    def on_step(self, event: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        origin, do = (event["partition"], event["offset"]), event["do"]
        if do == "async":
            return self._slowly(origin)
        if do == "publish":
            self.publish("alerts", {"origin": origin})
        elif do == "command":
            self.command(f"/worker/{event['to']}", "forwarded", origin)
        JOURNAL.ran.add(origin)
        if do == "fail":
            raise ValueError("asked to")
        return None

    async def _slowly(self, origin: Origin) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        JOURNAL.ran.add(origin)

    @forwarded.on_command
    def on_forwarded(self, origin: list[int]) -> None:
        JOURNAL.forwarded.add((origin[0], origin[1]))


def finished(origin: Origin, do: str) -> bool:
    if do in ("publish", "fail"):
        return origin in JOURNAL.polled
    if do == "command":
        return origin in JOURNAL.ran and origin in JOURNAL.forwarded
    return origin in JOURNAL.ran


def expected_committable(partition: int, routed: list[str]) -> int | None:
    """The partition's oldest unfinished offset; None while its offset 0 is unfinished."""
    for offset, do in enumerate(routed):
        if not finished((partition, offset), do):
            return offset or None
    return len(routed) or None


BEHAVIOURS = st.sampled_from(["plain", "plain", "publish", "fail", "command", "async"])
WORKERS = st.sampled_from("abc")
Step = tuple[str, int, str, str, str]
"""("route", partition, what the record does, its worker, the worker it commands), or
("poll", ...): the sink reports what it took, or ("tick", ...): the event loop turns."""

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("route"), st.integers(0, 1), BEHAVIOURS, WORKERS, WORKERS),
        st.tuples(st.just("poll"), st.just(0), st.just(""), st.just(""), st.just("")),
        st.tuples(st.just("tick"), st.just(0), st.just(""), st.just(""), st.just("")),
    ),
    max_size=40,
)


async def run(steps: list[Step]) -> None:
    global JOURNAL
    JOURNAL = Journal()
    registry = MetricsRegistry()
    sink = MemorySink(keep=False)
    connector: Any = sink  # produces only
    publisher = InsightPublisher(
        {"alerts": SinkTarget("alerts", "json", connector)}, registry, DeliveryFailures(registry)
    )
    async with Plane({"/worker/:id": Worker}, publisher=publisher) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/worker/{key}"), "step")
        router = RecordRouter(plane, [route], DeadLetters(connector, "dlq", registry), registry)
        trackers = [PartitionTracker(TopicPartition("readings", p)) for p in (0, 1)]
        routed: list[list[str]] = [[], []]
        for kind, partition, do, worker, to in steps:
            if kind == "route":
                offset = len(routed[partition])
                value = {"partition": partition, "offset": offset, "do": do, "to": to}
                routed[partition].append(do)
                record = MemoryRecord(
                    "readings", partition, offset, worker.encode(), orjson.dumps(value)
                )
                router.route(record, trackers[partition])
            elif kind == "poll":
                JOURNAL.polled |= JOURNAL.ran
                sink.poll()
            else:
                await asyncio.sleep(0)
            for p, tracker in enumerate(trackers):
                assert tracker.committable == expected_committable(p, routed[p]), (kind, routed)
                # In flight: every record from the oldest unfinished on, done or not.
                assert len(tracker) == len(routed[p]) - (tracker.committable or 0), routed
                oldest = (tracker.committable or 0) if len(tracker) else None
                assert tracker.oldest_inflight == oldest
        await plane.settle()
        JOURNAL.polled |= JOURNAL.ran
        sink.poll()
        for p, tracker in enumerate(trackers):
            assert tracker.committable == expected_committable(p, routed[p])
            assert tracker.committable == (len(routed[p]) or None)
            assert len(tracker) == 0


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_the_committable_offset_is_the_oldest_unfinished_whatever_each_command_does(
    steps: list[Step],
) -> None:
    asyncio.run(run(steps))


TICKS: list[Step] = [("tick", 0, "", "", "")] * 3


@pytest.mark.parametrize(
    "first",
    [
        # A record waits in ``a``'s mailbox while the one before runs asynchronously;
        # the next, for an idle agent, finishes at once, but must not be committed past.
        pytest.param([("route", 0, "async", "a", ""), ("route", 0, "plain", "a", "")], id="queued"),
        # Nothing of partition 0 is in flight, but its record's agent is busy with one of
        # partition 1: the record is queued, and stays uncommitted until it ran.
        pytest.param(
            [("route", 1, "async", "a", ""), ("route", 0, "plain", "a", "")],
            id="agent busy with another partition's",
        ),
        # The record's command waits for a busy agent: unfinished until it runs.
        pytest.param(
            [("route", 1, "async", "b", ""), ("route", 0, "command", "a", "b")],
            id="command to a busy agent",
        ),
    ],
)
def test_a_record_held_back_holds_back_the_idle_agent_s_record_after_it(first: list[Step]) -> None:
    asyncio.run(run([*first, ("route", 0, "plain", "c", ""), *TICKS]))
