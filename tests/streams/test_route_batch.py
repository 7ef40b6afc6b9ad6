"""A fetched batch routed in one call does what routing its records one by one does.

``RecordRouter.route_batch`` is the source loop's path: it looks up a partition's
tracker, route and inline ack once a run of its records, and routes each record inline
(see :mod:`swimstream.streams.router`). ``RecordRouter.route``, a record at a time, is
the reference: whatever the records are (bad JSON, a route that fails, a topic with
several routes, a template that reads the payload) and whatever their commands do
(complete, fork, publish, fail, run asynchronously, fill a mailbox), the two must leave
the same trackers, the same agents' work, the same dead letters and counters, and stop
at the same record when a mailbox fills.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import FakeClock, Plane
from swimstream.streams.connector import InboundRecord, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from swimstream.streams.tracking import OffsetBook
from swimstream.testing import MemoryRecord, MemorySink

CAPACITY = 2
"""Mailbox capacity: small, so that records for a busy agent fill its mailbox."""


class Worker(Agent):
    """Does what each record says, and notes it in its class's journal."""

    step = CommandLane[dict[str, Any]]()
    raw = CommandLane[bytes]()
    journal: list[tuple[str, Any]]

    @raw.on_command
    def on_raw(self, value: bytes) -> None:
        self.journal.append((self.params["id"], value))

    @step.on_command
    def on_step(self, event: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        do = event["do"]
        self.journal.append((self.params["id"], event["n"]))
        if do == "async":
            return self._slowly(event["n"])
        if do == "publish":
            self.publish("alerts", {"n": event["n"]})
        elif do == "command":
            self.command(f"/worker/{event['to']}", "step", {"n": -event["n"], "do": "plain"})
        elif do == "fail":
            raise ValueError("asked to")
        return None

    async def _slowly(self, n: int) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.journal.append(("slow", n))


ROUTES = [
    SourceRoute("readings", RouteTemplate.parse("/worker/{key}"), "step"),
    SourceRoute("by-payload", RouteTemplate.parse("/worker/{payload.to}"), "step"),
    SourceRoute("twice", RouteTemplate.parse("/worker/{key}"), "step"),
    SourceRoute("twice", RouteTemplate.parse("/worker/{payload.to}"), "step"),
    SourceRoute("bytes", RouteTemplate.parse("/worker/{key}"), "raw", "raw"),
]
TOPICS = ["readings", "readings", "readings", "by-payload", "twice", "bytes"]
"""Topics a record may come from: mostly the usual, a key-only route's."""

Record = tuple[str, int, str, str, str]
"""(topic, partition, what its command does, its key, the worker it names)."""

RECORDS = st.tuples(
    st.sampled_from(TOPICS),
    st.integers(0, 1),
    st.sampled_from(
        ["plain", "plain", "plain", "publish", "fail", "command", "async", "bad", "big", "deep"]
    ),
    st.sampled_from(["a", "b", "c", ""]),  # (an empty key routes nowhere: a dead letter)
    st.sampled_from("abc"),
)
BATCHES = st.lists(st.lists(RECORDS, max_size=12), max_size=6)

LIMIT = 2_000
"""The routers' record size limit (``max_record_bytes``)."""

SPECIAL = {
    "bad": b"{not json",
    "big": b'"' + b"x" * LIMIT + b'"',  # over the limit
    "deep": b"[" * 300 + b"]" * 300,  # valid JSON nested deeper than a lane may hold
}
"""The values of records that are dead-lettered as they are decoded."""


def inbound(batches: list[list[Record]]) -> list[list[InboundRecord]]:
    """The batches as consumed records, each partition's offsets counting from 0."""
    offsets: dict[tuple[str, int], int] = {}
    made: list[list[InboundRecord]] = []
    n = 0
    for batch in batches:
        made.append([])
        for topic, partition, do, key, to in batch:
            offset = offsets.get((topic, partition), 0)
            offsets[topic, partition] = offset + 1
            n += 1
            value = SPECIAL.get(do) or orjson.dumps({"do": do, "to": to, "n": n})
            made[-1].append(MemoryRecord(topic, partition, offset, key.encode(), value))
    return made


async def outcome(batches: list[list[InboundRecord]], in_one_call: bool) -> dict[str, Any]:
    """Route ``batches`` (the event loop turning between them, the sink polled) one
    record at a time or a batch in one call; what it left behind."""
    Worker.journal = []
    registry = MetricsRegistry()
    sink = MemorySink()
    connector: Any = sink  # produces only
    publisher = InsightPublisher(
        {"alerts": SinkTarget("alerts", "json", connector)}, registry, DeliveryFailures(registry)
    )
    stops: list[tuple[int, int, str]] = []
    trace: list[Any] = []
    async with Plane(
        {"/worker/:id": Worker}, publisher=publisher, mailbox_capacity=CAPACITY
    ) as plane:
        for worker in "abc":  # (active and idle: their commands run as they are routed)
            await plane.command(f"/worker/{worker}", "step", {"do": "plain", "n": 0})
        await plane.settle()
        dead = DeadLetters(connector, "dlq", registry)
        router = RecordRouter(plane, ROUTES, dead, registry, max_record_bytes=LIMIT)
        book = OffsetBook()
        for number, batch in enumerate(batches):
            if in_one_call:
                start = 0
                while start < len(batch):
                    start, tracker, full = router.route_batch(batch, start, book)
                    assert tracker is not None or start == len(batch)
                    if full is not None:
                        stops.append((number, start, full))
            else:
                for index, record in enumerate(batch):
                    tp = TopicPartition(record.topic() or "", record.partition() or 0)
                    full = router.route(record, book.tracker(tp))
                    if full is not None:
                        stops.append((number, index + 1, full))
            trace.append(snapshot(book, sink))
            await asyncio.sleep(0)
            sink.poll()
            trace.append(snapshot(book, sink))
        await plane.settle()
        sink.poll()
        trace.append(snapshot(book, sink))
        help_text = "Records consumed from source topics."
        counted = {
            topic: registry.counter("records_in", help_text, topic=topic).value
            for topic in ("readings", "by-payload", "twice", "bytes")
        }
    return {"stops": stops, "trace": trace, "journal": Worker.journal, "counted": counted}


def snapshot(book: OffsetBook, sink: MemorySink) -> Any:
    """Every tracker's state and what the sink was given, in order."""
    trackers = {
        tp: (t.committable, t.routed, t.oldest_inflight, len(t))
        for tp, t in sorted(book.trackers.items())
    }
    sent = [(r.topic, r.key, r.value, r.headers) for r in sink.records]
    return trackers, sent, list(Worker.journal)


@settings(max_examples=250, deadline=None)
@given(BATCHES)
def test_a_batch_routed_in_one_call_does_what_routing_each_record_does(
    batches: list[list[Record]],
) -> None:
    each = asyncio.run(outcome(inbound(batches), in_one_call=False))
    in_one_call = asyncio.run(outcome(inbound(batches), in_one_call=True))
    assert in_one_call == each


async def test_a_partition_given_back_with_records_to_drop_stops_the_batch_at_its_record() -> None:
    """A tracker with ``replayed_to`` set (given back after a revoke) is the caller's to
    route: the batch stops at its first record, before routing it."""
    async with Plane({"/worker/:id": Worker}) as plane:
        Worker.journal = []
        registry = MetricsRegistry()
        sink: Any = MemorySink()
        router = RecordRouter(plane, ROUTES[:1], DeadLetters(sink, "dlq", registry), registry)
        book = OffsetBook()
        book.tracker(TopicPartition("readings", 1)).replayed_to = 5
        plain = orjson.dumps({"do": "plain", "to": "a", "n": 0})
        batch: list[InboundRecord] = [
            MemoryRecord("readings", 0, 0, b"a", plain),
            MemoryRecord("readings", 0, 1, b"b", plain),
            MemoryRecord("readings", 1, 3, b"c", plain),
            MemoryRecord("readings", 0, 2, b"a", plain),
        ]
        index, tracker, full = router.route_batch(batch, 0, book)
        await plane.settle()
        assert (index, full) == (2, None)
        assert tracker is book.trackers[TopicPartition("readings", 1)]
        assert [worker for worker, _ in Worker.journal] == ["a", "b"]
        assert book.trackers[TopicPartition("readings", 0)].routed == 2
        assert tracker.routed is None and tracker.replayed_to == 5


async def test_a_batch_notes_the_time_once_for_the_recency_of_its_agents() -> None:
    """The agents a batch runs at once are as recent as the batch (``Plane.note_time``),
    so an idle timeout counts from it, not from the plane's last drain."""
    clock = FakeClock()
    async with Plane({"/worker/:id": Worker}, idle_timeout=100.0, clock=clock) as plane:
        Worker.journal = []
        registry = MetricsRegistry()
        sink: Any = MemorySink()
        router = RecordRouter(plane, ROUTES[:1], DeadLetters(sink, "dlq", registry), registry)
        book = OffsetBook()
        plain = orjson.dumps({"do": "plain", "to": "a", "n": 0})
        for key in (b"a", b"b"):
            await plane.command(f"/worker/{key.decode()}", "step", orjson.loads(plain))
        await plane.settle()
        clock.advance(50.0)
        router.route_batch([MemoryRecord("readings", 0, 0, b"a", plain)], 0, book)
        await plane.settle()
        clock.advance(60.0)  # b idle for 110 s, a for 60 s
        plane.passivate_idle()
        assert plane.active_node_uris() == ["/worker/a"]
