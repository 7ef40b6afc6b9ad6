"""Lane sinks: a record per change, or the latest change per slot with ``coalesce``.

The sink connector here (``MemorySink``) keeps what it is given and reports deliveries
when polled, as a broker client does; the integration tests run lane sinks against Tansu.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, CounterLane, MapLane, ValueLane
from swimstream.metrics import MetricsRegistry
from swimstream.ratelimit import LOG_INTERVAL
from swimstream.runtime import Plane
from swimstream.streams.connector import TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.lane_sink import LaneSink
from swimstream.streams.sinks import DeliveryFailures, SinkTarget
from swimstream.streams.tracking import PartitionTracker, record_ack
from swimstream.testing import MemoryRecord, MemorySink, open_plane
from tests.streams.refusing import RefusingSink


class Board(Agent):
    """A value lane, a map lane and a counter, changed by ``step`` commands."""

    state = ValueLane[Any](default=None)
    cells = MapLane[str, int]()
    hits = CounterLane()
    step = CommandLane[list[Any]]()

    @step.on_command
    def on_step(self, step: list[Any]) -> None:
        kind = step[0]
        if kind == "set":
            self.state.set(step[1])
        elif kind == "put":
            self.cells[step[1]] = step[2]
        elif kind == "remove":
            self.cells.remove(step[1])
        elif kind == "clear":
            self.cells.clear()
        else:
            self.hits.add(step[1])


ROUTES = {"/board/:id": Board}


def lane_sink(
    plane: Plane,
    lane: str,
    coalesce: float | None,
    connector: MemorySink | None = None,
    *,
    failures: DeliveryFailures | None = None,
    checkpoint: Callable[[], int] | None = None,
    registry: MetricsRegistry | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[LaneSink, MemorySink]:
    connector = connector if connector is not None else MemorySink()
    registry = registry if registry is not None else MetricsRegistry()
    sink = LaneSink(
        SinkTarget("out", "json", connector),  # type: ignore[arg-type]  # produces only
        "id",
        registry,
        failures if failures is not None else DeliveryFailures(registry),
        coalesce,
        checkpoint,
        clock,
    )
    plane.observe(sink, route="/board/:id", lane=lane)
    return sink, connector


def sent(sink: MemorySink) -> list[tuple[str, str, Any]]:
    """(key, lane, JSON value) of every record the sink was given."""
    return [
        (r.key.decode(), r.headers["swimstream.lane"].decode(), orjson.loads(r.value))
        for r in sink.records
        if r.key is not None and r.value is not None
    ]


def fold(records: list[tuple[str, str, Any]]) -> dict[tuple[str, str], Any]:
    """What a consumer that keeps the latest state per key and lane ends up with."""
    state: dict[tuple[str, str], Any] = {}
    for key, lane, value in records:
        if lane != "cells":
            state[key, lane] = value
            continue
        cells = state.setdefault((key, lane), {})
        if "clear" in value:
            cells.clear()
        elif "remove" in value:
            cells.pop(value["remove"], None)
        else:
            cells[value["update"]] = value["value"]
    return state


async def test_a_coalesced_value_lane_sink_produces_the_latest_value_of_each_agent() -> None:
    async with open_plane(ROUTES) as plane:
        sink, connector = lane_sink(plane, "state", coalesce=0.1)
        for n in range(100):
            for board in ("a", "b", "c"):
                await plane.command(f"/board/{board}", "step", ["set", f"{board}{n}"])
        await plane.settle()
        assert sent(connector) == [] and sink.pending == 3
        sink.flush()
        assert sorted(sent(connector)) == [
            ("a", "state", "a99"),
            ("b", "state", "b99"),
            ("c", "state", "c99"),
        ]
        sink.flush()
        assert len(sent(connector)) == 3  # nothing changed since


async def test_without_coalesce_every_change_is_a_record_at_once() -> None:
    async with open_plane(ROUTES) as plane:
        _, connector = lane_sink(plane, "hits", coalesce=None)
        for delta in (1, 2, 3):
            await plane.command("/board/a", "step", ["add", delta])
        await plane.settle()
        assert sent(connector) == [("a", "hits", 1), ("a", "hits", 3), ("a", "hits", 6)]


async def test_a_map_lane_keeps_its_order_through_a_clear() -> None:
    async with open_plane(ROUTES) as plane:
        sink, connector = lane_sink(plane, "cells", coalesce=0.1)
        steps = [["put", "x", 1], ["put", "z", 5], ["clear"], ["put", "x", 3], ["put", "y", 4]]
        steps += [["remove", "y"], ["put", "x", 6]]
        for step in steps:
            await plane.command("/board/a", "step", step)
        await plane.settle()
        sink.flush()
        assert sent(connector) == [  # z went with the clear; x's last change came last
            ("a", "cells", {"clear": True}),
            ("a", "cells", {"remove": "y"}),
            ("a", "cells", {"update": "x", "value": 6}),
        ]
        assert fold(sent(connector)) == {("a", "cells"): {"x": 6}}


async def test_an_offset_is_committable_only_once_its_coalesced_record_is_delivered() -> None:
    tracker = PartitionTracker(TopicPartition("in", 0))
    async with open_plane(ROUTES) as plane:
        sink, connector = lane_sink(plane, "state", coalesce=0.1)
        for offset in range(3):
            ack = record_ack(tracker, None, offset, None)  # type: ignore[arg-type]
            plane.submit("/board/a", "step", ["set", offset], ack)
        await plane.settle()
        assert tracker.committable is None  # each record's change waits in the sink
        sink.flush()
        assert len(sent(connector)) == 1 and tracker.committable is None
        connector.poll()  # the broker acknowledged the one record standing for all three
        assert tracker.committable == 3


async def test_a_coalesced_change_json_cannot_hold_is_logged_and_the_flush_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A record may carry JSON nested deeper than JSON can be written back (orjson reads
    1,024 levels, writes 254). Its coalesced change is logged as not written, its record
    completes (a failed effect, as elsewhere), and the flush goes on with the changes after
    it: it used to raise, losing them and ending the coalescing task for good."""
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    tracker = PartitionTracker(TopicPartition("in", 0))
    async with open_plane(ROUTES) as plane:
        sink, connector = lane_sink(plane, "state", coalesce=0.1)
        for offset, (board, value) in enumerate([("a", 1), ("b", deep), ("c", 3)]):
            ack = record_ack(tracker, None, offset, None)  # type: ignore[arg-type]
            plane.submit(f"/board/{board}", "step", ["set", value], ack)
        await plane.settle()
        sink.flush()
        assert sent(connector) == [("a", "state", 1), ("c", "state", 3)]
        assert (
            "the change of lane 'state' of /board/b cannot be written to out as json: "
            "Recursion limit reached" in caplog.text
        )
        connector.poll()
        assert tracker.committable == 3


@pytest.mark.parametrize("coalesce", [None, 0.1], ids=["per-change", "coalesced"])
async def test_insights_out_counts_only_the_records_the_client_took(coalesce: float | None) -> None:
    """A record the producer refuses (its queue stayed full) was counted in
    ``insights_out`` all the same, so the counter ran ahead of the output topic."""
    registry = MetricsRegistry()
    async with open_plane(ROUTES) as plane:
        sink, connector = lane_sink(
            plane, "state", coalesce, RefusingSink("out"), registry=registry
        )
        for board, value in [("a", "fine"), ("b", "refuse"), ("c", "fine too")]:
            plane.submit(f"/board/{board}", "step", ["set", value])
        await plane.settle()
        sink.flush()
        assert sent(connector) == [("a", "state", "fine"), ("c", "state", "fine too")]
        assert registry.value("insights_out", topic="out") == 2


async def test_coalesced_changes_json_cannot_hold_are_counted_and_logged_not_line_by_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fifty agents holding a value nested deeper than JSON can be written: each flush
    logged one error line per agent and no metric counted them (without a coalesce, the
    same changes fail their callbacks: counted, and logged once per 10 s). Now they are
    counted, and logged once with the number of the others when the interval is over."""
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    registry = MetricsRegistry()
    now = [1_000.0]
    async with open_plane(ROUTES) as plane:
        sink, connector = lane_sink(plane, "state", 0.1, registry=registry, clock=lambda: now[0])
        for board in range(50):
            plane.submit(f"/board/{board}", "step", ["set", deep])
        await plane.settle()
        sink.flush()
        assert sent(connector) == []
        assert registry.value("lane_sink_unwritable", topic="out") == 50
        lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(lines) == 1, lines
        assert "cannot be written to out as json: Recursion limit reached" in lines[0]
        now[0] += LOG_INTERVAL  # the interval is over: the others are told
        sink.flush()
        lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(lines) == 2 and lines[1].endswith("(48 more since the last report)"), lines


async def test_the_flush_task_produces_on_its_own_and_once_more_when_cancelled() -> None:
    """Two sinks of one lane: one flushes every 50 ms, the other every minute, so only
    its flush as it is cancelled (the stop) can have produced its record."""
    async with open_plane(ROUTES) as plane:
        ticking, ticked = lane_sink(plane, "state", coalesce=0.05)
        waiting, waited = lane_sink(plane, "state", coalesce=60.0)
        tasks = [asyncio.create_task(sink.run()) for sink in (ticking, waiting)]
        await plane.command("/board/a", "step", ["set", 2])
        await plane.settle()
        await asyncio.sleep(0.3)
        assert sent(ticked) == [("a", "state", 2)]  # on its own
        assert sent(waited) == [] and waiting.pending == 1
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert sent(waited) == [("a", "state", 2)]
        assert sent(ticked) == [("a", "state", 2)]  # nothing new: nothing more


CELL_KEYS = st.sampled_from(["x", "y", None])
"""Map keys; ``None`` is one (a clear's slot was keyed by it, so they collided)."""

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from("ab"), st.integers(0, 9)),
        st.tuples(st.just("put"), st.sampled_from("ab"), CELL_KEYS, st.integers(0, 9)),
        st.tuples(st.just("remove"), st.sampled_from("ab"), CELL_KEYS),
        st.tuples(st.just("clear"), st.sampled_from("ab")),
        st.tuples(st.just("add"), st.sampled_from("ab"), st.integers(-3, 3)),
        st.just(("flush",)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(STEPS)
@example([("put", "a", "x", 1), ("flush",), ("clear", "a"), ("put", "a", None, 2)])
def test_a_consumer_of_coalesced_records_ends_where_one_of_every_change_does(
    steps: list[tuple[Any, ...]],
) -> None:
    async def run() -> None:
        async with open_plane(ROUTES) as plane:
            every = [lane_sink(plane, lane, None)[1] for lane in ("state", "cells", "hits")]
            coalesced = [lane_sink(plane, lane, 1.0) for lane in ("state", "cells", "hits")]

            def flush_and_compare() -> None:
                for sink, _ in coalesced:
                    sink.flush()
                expected = fold([r for c in every for r in sent(c)])
                assert fold([r for _, c in coalesced for r in sent(c)]) == expected

            for step in steps:
                if step[0] == "flush":
                    await plane.settle()
                    flush_and_compare()
                    continue
                kind, board, *args = step
                await plane.command(f"/board/{board}", "step", [kind, *args])
            await plane.settle()
            flush_and_compare()

    asyncio.run(run())


async def test_a_change_the_sink_cannot_produce_is_dead_lettered_and_later_ones_commit() -> None:
    """A record per change: a change that cannot be encoded or produced fails its
    callback, so its record goes to the dead letters; it must complete all the same, or
    no offset after it would ever be committed."""
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    tracker = PartitionTracker(TopicPartition("in", 0))
    connector = RefusingSink("out")
    dead = DeadLetters(connector, "dead", MetricsRegistry())  # type: ignore[arg-type]  # produces only
    async with open_plane(ROUTES) as plane:
        lane_sink(plane, "state", None, connector)
        for offset, value in enumerate([1, deep, "refuse", 4]):
            record = MemoryRecord("in", 0, offset, b"k", b"")
            plane.submit(
                "/board/a", "step", ["set", value], record_ack(tracker, record, offset, dead)
            )
        await plane.settle()
        connector.poll()  # the changes and the dead letters are delivered
        assert [
            (r.topic, r.headers.get("swimstream.origin.offset")) for r in connector.records
        ] == [
            ("out", None),
            ("dead", b"1"),
            ("dead", b"2"),
            ("out", None),
        ]
        assert tracker.committable == 4


async def test_a_coalesced_change_the_client_refuses_fails_the_instance_and_the_flush_goes_on() -> (
    None
):
    """The client refused a coalesced record at ``produce`` (its queue stayed full, the
    record is too large): the flush raised, losing the changes after it, and the
    coalescing task ended without a word, never to flush again. Now the refusal counts
    as a record never delivered (the service stops on it) and its changes' records stay
    unfinished; the flush goes on with the rest."""
    tracker = PartitionTracker(TopicPartition("in", 0))
    connector = RefusingSink("out")
    registry = MetricsRegistry()
    stopped: list[BaseException] = []
    failures = DeliveryFailures(registry, on_failure=stopped.append)
    async with open_plane(ROUTES) as plane:
        sink, _ = lane_sink(plane, "state", 0.05, connector, failures=failures)
        flushing = asyncio.create_task(sink.run())
        for offset, (board, value) in enumerate([("a", 1), ("b", "refuse"), ("c", 3)]):
            ack = record_ack(tracker, None, offset, None)  # type: ignore[arg-type]
            plane.submit(f"/board/{board}", "step", ["set", value], ack)
        await plane.settle()
        await asyncio.sleep(0.2)
        connector.poll()
        assert sent(connector) == [("a", "state", 1), ("c", "state", 3)]
        assert failures.count == 1 and "queue full" in str(stopped[0])
        assert tracker.committable == 1  # not past the refused one
        await plane.command("/board/d", "step", ["set", 4])  # the task flushes on
        await plane.settle()
        await asyncio.sleep(0.2)
        assert ("d", "state", 4) in sent(connector)
        flushing.cancel()
        await asyncio.gather(flushing, return_exceptions=True)


@pytest.mark.parametrize("coalesce", [None, 0.1])
async def test_with_durable_state_a_lane_sink_record_names_its_checkpoint(
    coalesce: float | None,
) -> None:
    """As published insights do: on a broker that shows records of aborted transactions
    (Tansu), it is what tells a crash's leftover copies apart."""
    async with open_plane(ROUTES) as plane:
        sink, connector = lane_sink(plane, "state", coalesce, checkpoint=lambda: 1796573006230007)
        await plane.command("/board/a", "step", ["set", 1])
        await plane.settle()
        sink.flush()
        [record] = connector.records
        assert record.headers == {
            "swimstream.node": b"/board/a",
            "swimstream.lane": b"state",
            "swimstream.checkpoint": b"1796573006230007",
        }
