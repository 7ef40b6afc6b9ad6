"""Routing records to command lanes: one route per topic, several, and bad records."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from swimstream import Agent, CommandLane, CounterLane, ValueLane
from swimstream.crdt import LWWMap, encode
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import MemoryAgentStore, Plane
from swimstream.streams import router as router_module
from swimstream.streams.connector import TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from swimstream.streams.tracking import PartitionTracker
from swimstream.testing import MemoryRecord, MemorySink, open_plane
from tests.streams.refusing import RefusingSink


class Meter(Agent):
    """Keeps the last JSON reading and the last raw bytes it was sent."""

    last = ValueLane[Any](default=None)
    raw = ValueLane[Any](default=None)
    reading = CommandLane[dict[str, Any]]()
    bytes_in = CommandLane[bytes]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        if event.get("explode"):
            raise ValueError("asked to")
        self.last.set(event)

    @bytes_in.on_command
    def on_bytes(self, value: bytes) -> None:
        self.raw.set(value.decode())


def router_for(
    plane: Plane, routes: list[SourceRoute]
) -> tuple[RecordRouter, MemorySink, PartitionTracker]:
    sink = MemorySink()
    registry = MetricsRegistry()
    dead = DeadLetters(sink, "app.dead-letter", registry)  # type: ignore[arg-type]  # produces only
    tracker = PartitionTracker(TopicPartition("readings", 0))
    return RecordRouter(plane, routes, dead, registry), sink, tracker


def record(offset: int, key: str, value: bytes) -> MemoryRecord:
    return MemoryRecord("readings", 0, offset, key.encode(), value)


def reasons(sink: MemorySink) -> list[tuple[str, str]]:
    """(origin offset, reason) of every dead letter."""
    return [
        (r.headers["swimstream.origin.offset"].decode(), r.headers["swimstream.error"].decode())
        for r in sink.records
        if r.topic == "app.dead-letter"
    ]


async def test_one_route_delivers_good_records_and_dead_letters_bad_ones() -> None:
    async with open_plane({"/meter/:id": Meter}) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/meter/{payload.meter}"), "reading")
        router, sink, tracker = router_for(plane, [route])
        records = [
            record(0, "a", orjson.dumps({"meter": "a", "v": 1})),
            record(1, "b", b"{not json"),
            record(2, "c", orjson.dumps({"v": 3})),  # no meter field to route by
            record(3, "d", orjson.dumps({"meter": "d", "explode": True})),
            record(4, "e", orjson.dumps({"meter": "e", "v": 5})),
        ]
        for r in records:
            assert router.route(r, tracker) is None
        await plane.settle()
        sink.poll()  # the dead letters are delivered
        assert plane.get("/meter/a", "last") == {"meter": "a", "v": 1}
        assert plane.get("/meter/e", "last") == {"meter": "e", "v": 5}
        found = reasons(sink)
        assert [offset for offset, _ in found] == ["1", "2", "3"]
        assert "invalid JSON" in found[0][1]
        assert "field 'meter' is missing" in found[1][1]
        assert "asked to" in found[2][1]
        assert tracker.committable == 5  # every record done, the bad ones included


class Tally(Agent):
    """Counts what records add: a lane that takes commands without an ``on_command``."""

    count = CounterLane()


async def test_a_record_a_counter_lane_refuses_is_dead_lettered_naming_the_command() -> None:
    async with open_plane({"/tally/:id": Tally}) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/tally/{key}"), "count")
        router, sink, tracker = router_for(plane, [route])
        router.route(record(0, "a", b"2"), tracker)
        router.route(record(1, "a", b'"lots"'), tracker)
        await plane.settle()
        sink.poll()
        assert plane.get("/tally/a", "count") == 2
        assert reasons(sink) == [
            (
                "1",
                "command to lane 'count' on agent /tally/a failed: "
                "ValueError: a command to counter lane 'count' must be an integer",
            )
        ]


async def test_a_record_larger_than_the_sinks_write_is_dead_lettered_without_its_value() -> None:
    """A value that fits no sink would fail its checkpoint at every restart; the dead
    letter leaves it out (it would not fit there either) and says where it is."""
    async with open_plane({"/meter/:id": Meter}) as plane:
        sink = MemorySink()
        registry = MetricsRegistry()
        dead = DeadLetters(sink, "app.dead-letter", registry, max_value_bytes=100)  # type: ignore[arg-type]  # produces only
        by_key = SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading")
        as_bytes = SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "bytes_in", "raw")
        large = orjson.dumps({"meter": "a", "pad": "x" * 200})
        for routes in ([by_key], [by_key, as_bytes]):  # one route, and the loop over several
            sink.records.clear()
            tracker = PartitionTracker(TopicPartition("readings", 0))
            router = RecordRouter(plane, routes, dead, registry, max_record_bytes=100)
            router.route(record(0, "a", orjson.dumps({"v": 1})), tracker)
            router.route(record(1, "b", large), tracker)
            await plane.settle()
            sink.poll()
            assert plane.get("/meter/a", "last") == {"v": 1}
            assert plane.get("/meter/b", "last") is None
            [letter] = sink.records
            reason = letter.headers["swimstream.error"].decode()
            assert f"record value is {len(large)} bytes, over the 100" in reason
            assert letter.value is None and letter.key == b"b"
            assert letter.headers["swimstream.value.dropped"].startswith(str(len(large)).encode())
            assert letter.headers["swimstream.origin.offset"] == b"1"
            assert tracker.committable == 2


def by_key_within(plane: Plane, limit: int) -> tuple[MemorySink, RecordRouter, PartitionTracker]:
    """A router of readings to ``/meter/{key}``, records and dead letters within
    ``limit`` bytes, its dead letters kept in the returned sink."""
    sink = MemorySink()
    registry = MetricsRegistry()
    dead = DeadLetters(sink, "app.dead-letter", registry, max_value_bytes=limit)  # type: ignore[arg-type]  # produces only
    by_key = SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading")
    router = RecordRouter(plane, [by_key], dead, registry, max_record_bytes=limit)
    return sink, router, PartitionTracker(TopicPartition("readings", 0))


async def test_a_dead_letter_leaves_out_its_largest_parts_as_few_as_it_takes() -> None:
    """A bad record with a huge key or header: its letter, measured by its value alone,
    was refused by the broker, which stopped the instance at every start."""
    async with open_plane({"/meter/:id": Meter}) as plane:
        sink, router, tracker = by_key_within(plane, 1_000)
        big_key = b"k" * 5_000
        router.route(MemoryRecord("readings", 0, 0, big_key, b"{not json"), tracker)
        noted = [("trace", b"t" * 3_000), ("tenant", b"blue")]
        router.route(MemoryRecord("readings", 0, 1, b"small", b"{not json", noted), tracker)
        await plane.settle()
        sink.poll()
        keyless, headless = sink.records
        assert keyless.key is None and keyless.value == b"{not json"
        digest = hashlib.sha256(big_key).hexdigest()
        assert keyless.headers["swimstream.key.dropped"] == (
            f"5000 bytes, over the 1000-byte limit; sha256 {digest}".encode()
        )
        assert headless.key == b"small" and headless.value == b"{not json"
        assert "trace" not in headless.headers and "swimstream.key.dropped" not in headless.headers
        assert headless.headers["swimstream.headers.dropped"].startswith(b"2 headers, 3015 bytes")
        assert headless.headers["swimstream.origin.offset"] == b"1"
        assert tracker.committable == 2


async def test_a_key_that_would_make_a_node_uri_too_long_is_dead_lettered() -> None:
    """Routed by ``{key}``, a megabyte key made an agent whose name no changelog record
    could hold: every checkpoint failed, at every restart."""
    async with open_plane({"/meter/:id": Meter}) as plane:
        sink, router, tracker = by_key_within(plane, 100_000)
        router.route(record(0, "m" * 20_000, orjson.dumps({"v": 1})), tracker)
        router.route(record(1, "a", orjson.dumps({"v": 2})), tracker)
        await plane.settle()
        sink.poll()
        [(offset, reason)] = reasons(sink)
        assert offset == "0"
        assert reason.startswith("RecordRoutingError: the node URI the route makes is 20,007 ")
        assert plane.active_node_uris() == ["/meter/a"]
        assert tracker.committable == 2


async def test_two_routes_on_one_topic_each_get_every_record_once() -> None:
    async with open_plane({"/meter/:id": Meter}) as plane:
        routes = [
            SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading"),
            SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "bytes_in", "raw"),
        ]
        router, sink, tracker = router_for(plane, routes)
        router.route(record(0, "a", orjson.dumps({"v": 1})), tracker)
        router.route(record(1, "b", b"plain text"), tracker)  # JSON fails, raw takes it
        await plane.settle()
        sink.poll()
        assert plane.get("/meter/a", "last") == {"v": 1}
        assert plane.get("/meter/a", "raw") == '{"v":1}'
        assert plane.get("/meter/b", "raw") == "plain text"
        assert plane.get("/meter/b", "last") is None
        assert [offset for offset, _ in reasons(sink)] == ["1"]
        assert tracker.committable == 2
        assert plane.statistics().commands == 3  # a: both routes; b: the raw one only


async def test_a_key_route_sends_each_key_to_its_agent_past_the_node_cache_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Node URIs of a ``{key}`` template are remembered by key, and the memory is bounded:
    with room for 3, ten keys three times over still reach their own agents, and keys
    that cannot be routed are dead-lettered every time, not remembered."""
    monkeypatch.setattr(router_module, "NODE_CACHE_SIZE", 3)
    async with open_plane({"/meter/:id": Meter}) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading")
        router, sink, tracker = router_for(plane, [route])
        offset = 0
        for round_number in range(3):
            for n in range(10):
                reading = {"n": n, "round": round_number}
                router.route(record(offset, f"m {n}", orjson.dumps(reading)), tracker)
                offset += 1
            for bad_key in (None, b"\xff"):
                bad = MemoryRecord("readings", 0, offset, bad_key, b"{}")
                router.route(bad, tracker)
                offset += 1
        nodes = router._single["readings"][3]
        assert nodes is not None and 0 < len(nodes) <= 3  # the bound holds
        await plane.settle()
        sink.poll()
        for n in range(10):
            assert plane.get(f"/meter/m%20{n}", "last") == {"n": n, "round": 2}
        found = reasons(sink)
        assert len(found) == 6
        assert sum("record has no key" in reason for _, reason in found) == 3
        assert sum("key is not UTF-8" in reason for _, reason in found) == 3
        assert tracker.committable == offset


async def test_a_record_for_an_agent_whose_stored_state_no_longer_fits_is_dead_lettered() -> None:
    """A lane that changed kind under the same name (here ``last``, stored as a map)
    leaves its agent unloadable: its records go to the dead letters naming the lane, and
    the others are processed."""
    store = MemoryAgentStore()
    store.save("/meter/old", {"last": encode(LWWMap("w").snapshot())})
    async with open_plane({"/meter/:id": Meter}, store=store) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading")
        router, sink, tracker = router_for(plane, [route])
        for offset, key in enumerate(("old", "new")):
            assert router.route(record(offset, key, b'{"v": 1}'), tracker) is None
        await plane.settle()
        sink.poll()
        assert plane.get("/meter/new", "last") == {"v": 1}
        [(origin, reason)] = reasons(sink)
        assert origin == "0" and "lane 'last' (ValueLane) was stored as a MapSnapshot" in reason
        assert tracker.committable == 2


class Relay(Agent):
    """Passes each reading on to another agent's lane: one its event names."""

    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        self.command(event["to"], event["lane"], event)


@pytest.mark.parametrize(
    ("to", "lane", "reason"),
    [
        ("/meter/x", "no_such_lane", "has no lane 'no_such_lane'"),
        ("/nowhere/x", "reading", "/nowhere/x"),
    ],
)
async def test_a_callback_whose_command_cannot_be_sent_is_dead_lettered_and_its_offset_moves_on(
    to: str, lane: str, reason: str
) -> None:
    """The command's ack was taken for the record before the send failed: the record
    must still complete once dead-lettered, or the partition's commits stop there."""
    async with open_plane({"/relay/:id": Relay, "/meter/:id": Meter}) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/relay/{key}"), "reading")
        router, sink, tracker = router_for(plane, [route])
        router.route(record(0, "a", orjson.dumps({"to": to, "lane": lane})), tracker)
        router.route(record(1, "b", orjson.dumps({"to": "/meter/b", "lane": "reading"})), tracker)
        await plane.settle()
        sink.poll()
        assert plane.get("/meter/b", "last") == {"to": "/meter/b", "lane": "reading"}
        [(origin, why)] = reasons(sink)
        assert origin == "0" and reason in why
        assert tracker.committable == 2


class Alarm(Agent):
    """Publishes every reading it is sent as an alert."""

    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        self.publish("alerts", event)


async def published(
    agent: type[Agent], readings: list[dict[str, Any]]
) -> tuple[RefusingSink, MetricsRegistry, PartitionTracker]:
    """``readings`` routed to ``agent`` at ``/alarm/a``, whose alerts go to a sink that
    refuses a value holding "refuse"; returns the sink, the registry and the tracker."""
    registry = MetricsRegistry()
    connector = RefusingSink("alerts")
    targets = {"alerts": SinkTarget("alerts", "json", connector)}  # type: ignore[arg-type]  # produces only
    publisher = InsightPublisher(targets, registry, DeliveryFailures(registry))
    async with Plane({"/alarm/:id": agent}, publisher=publisher) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/alarm/{key}"), "reading")
        dead = DeadLetters(connector, "app.dead-letter", registry)  # type: ignore[arg-type]  # produces only
        router = RecordRouter(plane, [route], dead, registry)
        tracker = PartitionTracker(TopicPartition("readings", 0))
        for offset, reading in enumerate(readings):
            router.route(record(offset, "a", orjson.dumps(reading)), tracker)
        await plane.settle()
        connector.poll()
    return connector, registry, tracker


async def test_an_insight_the_producer_refuses_is_dead_lettered_and_later_ones_commit() -> None:
    readings = [{"say": text} for text in ["fine", "refuse", "fine too"]]
    connector, _, tracker = await published(Alarm, readings)
    assert [(r.topic, r.value) for r in connector.records] == [
        ("alerts", b'{"say":"fine"}'),
        ("app.dead-letter", b'{"say":"refuse"}'),
        ("alerts", b'{"say":"fine too"}'),
    ]
    assert "BufferError: queue full" in reasons(connector)[0][1]
    assert tracker.committable == 3


class Tagger(Agent):
    """Publishes every reading, with a set (which JSON cannot write) when it says so."""

    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        self.publish("alerts", {**event, "tags": {1, 2}} if event.get("tags") else event)


async def test_insights_out_counts_the_records_produced_not_those_refused_or_unwritable() -> None:
    """``insights_out`` says how many insight records went to the sink: an insight whose
    value JSON cannot write, or whose record the producer refused, fails its callback
    (dead-lettered) and produced nothing. Both were counted as produced, so the counter
    ran ahead of what the output topic held."""
    readings: list[dict[str, Any]] = [
        {"say": "fine"},
        {"say": "refuse"},
        {"say": "tagged", "tags": True},
    ]
    connector, registry, _ = await published(Tagger, readings)
    produced = [r for r in connector.records if r.topic == "alerts"]
    assert len(produced) == 1 and registry.value("dead_letters") == 2
    assert registry.value("insights_out", topic="alerts") == 1


@pytest.mark.parametrize("at_delivery", [False, True], ids=["refused", "never-delivered"])
async def test_a_dead_letter_the_broker_does_not_take_leaves_its_offset_uncommitted(
    at_delivery: bool,
) -> None:
    """Neither processed nor kept: the record must be replayed, so no offset past it is
    committed, and the failure is counted where health reads it. The records after it
    are processed all the same."""
    registry = MetricsRegistry()
    failures = DeliveryFailures(registry)
    connector = RefusingSink("app.dead-letter", at_delivery=at_delivery)
    async with open_plane({"/meter/:id": Meter}) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading")
        dead = DeadLetters(connector, "app.dead-letter", registry, failures=failures)  # type: ignore[arg-type]  # produces only
        router = RecordRouter(plane, [route], dead, registry)
        tracker = PartitionTracker(TopicPartition("readings", 0))
        router.route(record(0, "a", orjson.dumps({"v": 0})), tracker)
        router.route(record(1, "b", b"refuse: not JSON"), tracker)
        router.route(record(2, "c", orjson.dumps({"v": 2})), tracker)
        await plane.settle()
        connector.poll()
        assert plane.get("/meter/c", "last") == {"v": 2}
        assert tracker.committable == 1
        assert failures.count == 1
        assert failures.last_error is not None
        # Refused by the client, the letter was never sent: not one of the dead letters.
        assert registry.value("dead_letters") == (1 if at_delivery else 0)


async def test_insights_never_delivered_in_a_burst_are_counted_as_the_service_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An outage fails every record in flight at once: one line, then (the service
    stopping, ``Service.close``) one more with the count of the others."""
    registry = MetricsRegistry()
    failures = DeliveryFailures(registry)
    connector = RefusingSink("alerts", at_delivery=True)
    targets = {"alerts": SinkTarget("alerts", "json", connector)}  # type: ignore[arg-type]  # produces only
    publisher = InsightPublisher(targets, registry, failures)
    async with Plane({"/alarm/:id": Alarm}, publisher=publisher) as plane:
        for n in range(5):
            await plane.command(f"/alarm/{n}", "reading", {"say": "refuse"})
        await plane.settle()
        connector.poll()
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.sinks"]
    assert len(lines) == 1 and failures.count == 5, lines
    failures.report_held(everything=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.sinks"]
    assert len(lines) == 2, lines
    assert lines[1] == (
        "an insight record was not delivered: message timed out (3 more since the last report)"
    )


async def test_a_record_two_json_routes_cannot_decode_is_dead_lettered_once() -> None:
    async with open_plane({"/meter/:id": Meter}) as plane:
        routes = [
            SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading"),
            SourceRoute("readings", RouteTemplate.parse("/meter/{key}-copy"), "reading"),
        ]
        router, sink, tracker = router_for(plane, routes)
        router.route(record(0, "a", b"{not json"), tracker)
        router.route(record(1, "b", orjson.dumps({"v": 1})), tracker)
        await plane.settle()
        sink.poll()
        assert [offset for offset, _ in reasons(sink)] == ["0"]
        assert routes_named(sink) == ["/meter/{key}#reading, /meter/{key}-copy#reading"]
        assert plane.get("/meter/b-copy", "last") == {"v": 1}
        assert tracker.committable == 2


async def test_a_dead_letter_of_a_topic_with_several_routes_names_the_route_that_failed() -> None:
    """Its other routes took the record: whoever replays it must know which did not."""
    async with open_plane({"/meter/:id": Meter}) as plane:
        routes = [
            SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading"),
            SourceRoute("readings", RouteTemplate.parse("/meter/{payload.meter}"), "reading"),
            SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "bytes_in", "raw"),
        ]
        router, sink, tracker = router_for(plane, routes)
        router.route(record(0, "a", orjson.dumps({"meter": "m", "v": 1})), tracker)
        router.route(record(1, "b", orjson.dumps({"v": 2})), tracker)  # no meter field
        router.route(record(2, "c", orjson.dumps({"meter": "n", "explode": True})), tracker)
        await plane.settle()
        sink.poll()
        assert [offset for offset, _ in reasons(sink)] == ["1", "2", "2"]
        assert routes_named(sink) == [
            "/meter/{payload.meter}#reading",  # b: the route that reads the missing field
            "/meter/{key}#reading",  # c: both JSON routes' callbacks raised
            "/meter/{payload.meter}#reading",
        ]
        assert plane.get("/meter/b", "last") == {"v": 2}  # b's other routes took it
        assert plane.get("/meter/c", "raw") == '{"meter":"n","explode":true}'
        assert tracker.committable == 3


async def test_a_dead_letter_of_a_topic_with_one_route_names_no_route() -> None:
    async with open_plane({"/meter/:id": Meter}) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading")
        router, sink, tracker = router_for(plane, [route])
        router.route(record(0, "a", orjson.dumps({"explode": True})), tracker)
        await plane.settle()
        sink.poll()
        assert [offset for offset, _ in reasons(sink)] == ["0"]
        assert routes_named(sink) == []


def routes_named(sink: MemorySink) -> list[str]:
    """The ``swimstream.route`` header of every dead letter that has one."""
    return [
        r.headers["swimstream.route"].decode()
        for r in sink.records
        if r.topic == "app.dead-letter" and "swimstream.route" in r.headers
    ]


@pytest.mark.parametrize("template", ["/meter/x{key}", "/meter/{key}{payload.v}"])
async def test_a_full_mailbox_is_named_as_its_agent_is_so_the_source_waits_for_it(
    template: str,
) -> None:
    """The router names the full agent for the source to wait on: under another spelling
    of its URI (``/meter/x%2E`` for ``/meter/x.``) the wait found no agent and ended."""
    async with open_plane({"/meter/:id": Meter}, mailbox_capacity=4) as plane:
        route = SourceRoute("readings", RouteTemplate.parse(template), "reading")
        router, _, tracker = router_for(plane, [route])
        full = None
        for offset in range(8):
            full = router.route(record(offset, ".", b'{"v": "."}'), tracker) or full
        assert full is not None
        assert plane.active_node_uris() == [full]  # the one agent, under its own name
        await router.wait_for_room(full)
        await plane.settle()
        assert tracker.committable == 8


async def test_a_header_a_record_carries_twice_routes_by_its_last_value() -> None:
    """As Kafka's ``Headers.lastHeader``: the last header of a name is the one a
    ``{header.<name>}`` placeholder reads (README, the config reference)."""
    async with open_plane({"/meter/:id": Meter}) as plane:
        route = SourceRoute("readings", RouteTemplate.parse("/meter/{header.m}"), "reading")
        router, sink, tracker = router_for(plane, [route])
        headers = [("m", b"first"), ("other", b"x"), ("m", b"last")]
        record_ = MemoryRecord("readings", 0, 0, b"k", orjson.dumps({"v": 1}), headers)
        assert router.route(record_, tracker) is None
        await plane.settle()
        assert plane.get("/meter/last", "last") == {"v": 1}
        assert plane.active_node_uris() == ["/meter/last"]
        assert reasons(sink) == []
