"""Records nobody vetted: whatever a source takes must be served back and stored.

A JSON record nested deeper than orjson writes (254 levels; it reads 1,024) was taken:
the lane that kept it failed every GET (500), every stream event and every sink record
of it, and after a restart the same again, since it was stored. It is dead-lettered as
it arrives instead, as an HTTP command's body is refused (400).
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, ValueLane
from swimstream.routing import RouteTemplate
from swimstream.streams.router import MAX_NESTING, SourceRoute
from swimstream.testing import open_plane
from tests.streams.test_router import reasons, record, router_for


class Keeper(Agent):
    """Keeps what each record brings."""

    last = ValueLane[Any](default=None)
    kept = CommandLane[Any]()
    also = CommandLane[Any]()

    @kept.on_command
    def on_kept(self, value: Any) -> None:
        self.last.set(value)

    @also.on_command
    def on_also(self, value: Any) -> None:
        pass


def nested(depth: int, shapes: list[bool]) -> bytes:
    """JSON ``depth`` levels deep: a list or an object at each level, as ``shapes`` says."""
    opening = closing = b""
    for level in range(depth):
        if shapes[level % len(shapes)]:
            opening, closing = opening + b'{"a":', b"}" + closing
        else:
            opening, closing = opening + b"[", b"]" + closing
    return opening + b"1" + closing


def routes(several: bool) -> list[SourceRoute]:
    kept = SourceRoute("readings", RouteTemplate.parse("/keeper/{key}"), "kept")
    if not several:
        return [kept]
    return [kept, SourceRoute("readings", RouteTemplate.parse("/keeper/{key}"), "also")]


@settings(max_examples=60, deadline=None)
@given(
    depth=st.one_of(st.integers(0, 300), st.integers(MAX_NESTING - 2, MAX_NESTING + 2)),
    shapes=st.lists(st.booleans(), min_size=1, max_size=5),
    several=st.booleans(),
)
async def test_a_record_is_taken_exactly_when_what_it_holds_can_be_written_back(
    depth: int, shapes: list[bool], several: bool
) -> None:
    value = nested(depth, shapes)
    async with open_plane({"/keeper/:id": Keeper}) as plane:
        router, sink, tracker = router_for(plane, routes(several))
        router.route(record(0, "k", value), tracker)
        await plane.settle()
        sink.poll()
        if depth <= MAX_NESTING:
            assert reasons(sink) == []
            assert orjson.dumps(plane.get("/keeper/k", "last")) == value
        else:
            ((offset, reason),) = reasons(sink)
            assert offset == "0"
            assert reason.startswith(f"RecordDecodeError: JSON nested over {MAX_NESTING} levels")
            assert plane.get("/keeper/k", "last") is None
        assert tracker.committable == 1


async def test_brackets_inside_strings_are_no_nesting() -> None:
    value = orjson.dumps({"text": "[" * 2_000 + "{" * 2_000})
    async with open_plane({"/keeper/:id": Keeper}) as plane:
        router, sink, tracker = router_for(plane, routes(False))
        router.route(record(0, "k", value), tracker)
        await plane.settle()
        sink.poll()
        assert reasons(sink) == []
        assert orjson.dumps(plane.get("/keeper/k", "last")) == value


async def test_a_record_nested_as_deep_as_orjson_reads_is_dead_lettered_too() -> None:
    async with open_plane({"/keeper/:id": Keeper}) as plane:
        router, sink, tracker = router_for(plane, routes(False))
        router.route(record(0, "k", b"[" * 1_024 + b"]" * 1_024), tracker)
        router.route(record(1, "k", b"[" * 1_025 + b"]" * 1_025), tracker)  # orjson's own
        await plane.settle()
        sink.poll()
        found = reasons(sink)
        assert [offset for offset, _ in found] == ["0", "1"]
        assert f"JSON nested over {MAX_NESTING} levels" in found[0][1]
        assert "invalid JSON" in found[1][1]
        assert plane.get("/keeper/k", "last") is None
