"""What the log says of dead letters: the first at once, then one line per interval with
the count of the others (each one is still sent and counted)."""

from __future__ import annotations

import logging

import pytest

from swimstream.metrics import MetricsRegistry
from swimstream.ratelimit import LOG_INTERVAL
from swimstream.streams.dead_letter import DeadLetters
from swimstream.testing import MemoryRecord, MemorySink
from tests.streams.refusing import RefusingSink


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "swimstream.dead_letter"]


def test_the_first_dead_letter_is_logged_on_a_host_up_for_less_than_the_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The monotonic clock counts from the host's boot: a container's first seconds
    read under 10, and the first dead letter was held back as if a line had gone out at
    0, so the log said nothing of it until the next one, if any, came 10 s later."""
    sink = MemorySink()
    dead = DeadLetters(sink, "app.dead-letter", MetricsRegistry(), clock=lambda: 3.0)  # type: ignore[arg-type]  # produces only
    with caplog.at_level(logging.WARNING, logger="swimstream.dead_letter"):
        dead.send(MemoryRecord("in", 0, 7, b"k", b"{"), ValueError("not JSON"))
    assert _lines(caplog) == ["dead-lettered in[0]@7 to app.dead-letter: ValueError: not JSON"]
    assert len(sink.records) == 1


def test_dead_letters_inside_the_interval_are_counted_on_the_next_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1_000.0]
    sink = MemorySink()
    registry = MetricsRegistry()
    dead = DeadLetters(sink, "app.dead-letter", registry, clock=lambda: now[0])  # type: ignore[arg-type]  # produces only
    with caplog.at_level(logging.WARNING, logger="swimstream.dead_letter"):
        for offset in range(5):
            dead.send(MemoryRecord("in", 0, offset, b"k", b"{"), ValueError("not JSON"))
        now[0] += LOG_INTERVAL
        dead.send(MemoryRecord("in", 0, 5, b"k", b"{"), ValueError("not JSON"))
    assert _lines(caplog) == [
        "dead-lettered in[0]@0 to app.dead-letter: ValueError: not JSON",
        "dead-lettered in[0]@5 to app.dead-letter: ValueError: not JSON "
        "(4 more since the last report)",
    ]
    assert len(sink.records) == 6 and registry.value("dead_letters") == 6


def test_a_burst_that_ended_is_reported_whole_once_its_interval_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The letters held back were only told of by the next one logged: a burst of bad
    records that ended read as one letter in the log, however many it was."""
    now = [1_000.0]
    dead = DeadLetters(MemorySink(), "app.dead-letter", MetricsRegistry(), clock=lambda: now[0])  # type: ignore[arg-type]  # produces only
    with caplog.at_level(logging.WARNING, logger="swimstream.dead_letter"):
        for offset in range(5):
            dead.send(MemoryRecord("in", 0, offset, b"k", b"{"), ValueError("not JSON"))
        dead.report_held()  # (not yet: inside the interval)
        now[0] += LOG_INTERVAL
        dead.report_held()
        dead.report_held()  # (nothing more held)
        dead.send(MemoryRecord("in", 0, 5, b"k", b"{"), ValueError("not JSON"))
        dead.send(MemoryRecord("in", 0, 6, b"k", b"{"), ValueError("not JSON"))
        dead.report_held(everything=True)  # (the source stops)
    assert _lines(caplog) == [
        "dead-lettered in[0]@0 to app.dead-letter: ValueError: not JSON",
        "dead-lettered in[0]@4 to app.dead-letter: ValueError: not JSON "
        "(3 more since the last report)",
        "dead-lettered in[0]@6 to app.dead-letter: ValueError: not JSON "
        "(1 more since the last report)",
    ]


def test_a_record_dead_lettered_again_carries_this_failure_s_headers_once() -> None:
    """A record replayed from the dead-letter topic came with an earlier letter's
    headers: the new letter names each once, saying this failure, and keeps the rest."""
    sink = MemorySink()
    dead = DeadLetters(sink, "app.dead-letter", MetricsRegistry())  # type: ignore[arg-type]  # produces only
    dead.send(MemoryRecord("in", 0, 7, b"k", b"{"), ValueError("not JSON"))
    earlier = [*sink.records[0].header_list, ("trace", b"t-1")]
    dead.send(MemoryRecord("in", 1, 40, b"k", b"{", earlier), KeyError("tower"))
    again = sink.records[1].header_list
    names = [name for name, _ in again]
    assert len(names) == len(set(names)), names
    assert dict(again)["swimstream.error"] == b"KeyError: 'tower'"
    assert dict(again)["swimstream.origin.offset"] == b"40"
    assert dict(again)["trace"] == b"t-1"


def test_a_letter_the_sink_refused_is_not_logged_as_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A letter whose ``produce`` raised (a queue that never drained) was logged as
    "dead-lettered" next to its delivery failure: the log said the record was in the
    dead-letter topic, where it never went."""
    registry = MetricsRegistry()
    dead = DeadLetters(RefusingSink("app.dead-letter"), "app.dead-letter", registry)  # type: ignore[arg-type]  # produces only
    with caplog.at_level(logging.WARNING):
        dead.send(MemoryRecord("in", 0, 7, b"k", b"refuse"), ValueError("not JSON"))
    assert _lines(caplog) == []
    failures = [r.getMessage() for r in caplog.records if "in[0]@7" in r.getMessage()]
    assert len(failures) == 1 and "ValueError: not JSON" in failures[0], failures
    assert registry.value("dead_letters") == 0
    assert registry.value("insight_delivery_failures") == 1
