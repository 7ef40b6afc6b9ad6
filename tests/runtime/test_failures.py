"""Callback failures are counted exactly and logged at most once per interval a site,
with the traceback the first time only (as the README says): every report after it
repeated the whole traceback of the same site. Failures held back are logged once the
interval is over, or when the plane closes, even if the site never fails again."""

from __future__ import annotations

import logging

import pytest

from swimstream import Agent, CommandLane
from swimstream.ratelimit import LOG_INTERVAL
from swimstream.runtime.failures import FailureLog
from swimstream.testing import open_plane
from tests.support.waiting import wait_until


def raised(message: str) -> ValueError:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_a_site_is_logged_with_its_traceback_once_then_with_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1_000.0]
    log = FailureLog(clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="swimstream.agent"):
        for step in range(5):  # five failures inside one interval: one line
            log.record("/a/1", "/a/:id", "go", "on_command", raised(f"bad {step}"))
        now[0] += LOG_INTERVAL
        log.record("/a/2", "/a/:id", "go", "on_command", raised("bad 5"))
    assert log.count == 6 and log.by_site() == {("/a/:id", "go", "on_command"): 6}
    lines = [r for r in caplog.records if r.name == "swimstream.agent"]
    assert [r.exc_info is not None for r in lines] == [True, False]
    assert lines[1].getMessage() == (
        "on_command of lane 'go' on agent /a/2 failed: ValueError: bad 5 "
        "(4 more at this site since the last report)"
    )


def test_failures_held_back_are_logged_once_their_interval_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1_000.0]
    log = FailureLog(clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="swimstream.agent"):
        for step in range(5):
            log.record(f"/a/{step}", "/a/:id", "go", "on_command", raised(f"bad {step}"))
        assert log.report_held() == 0  # (the interval is not over)
        now[0] += LOG_INTERVAL
        assert log.report_held() == 1
        assert log.report_held() == 0  # (nothing held any more)
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.agent"]
    assert lines == [
        "on_command of lane 'go' on agent /a/0 failed: ValueError: bad 0",
        "on_command of lane 'go' on agent /a/4 failed: ValueError: bad 4 "
        "(3 more at this site since the last report)",
    ]


class Picky(Agent):
    go = CommandLane[int]()

    @go.on_command
    def on_go(self, value: int) -> None:
        raise ValueError(f"bad {value}")


def _agent_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "swimstream.agent"]


async def test_a_burst_that_ended_reaches_the_log_without_another_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The plane's housekeeping reports what a burst held back: the burst's first line
    was all the log ever showed, and an operator believed it failed once."""
    now = [1_000.0]
    with caplog.at_level(logging.ERROR, logger="swimstream.agent"):
        async with open_plane({"/picky/:id": Picky}) as plane:
            plane.failures = FailureLog(clock=lambda: now[0])  # (log lines on test time)
            for value in range(5):
                plane.submit("/picky/1", "go", value)
            await plane.settle()
            now[0] += LOG_INTERVAL
            await plane.advance(1.0)  # (the housekeeping runs every second)
            await wait_until(lambda: len(_agent_lines(caplog)) > 1, what="a second line")
            assert _agent_lines(caplog) == [
                "on_command of lane 'go' on agent /picky/1 failed: ValueError: bad 0",
                "on_command of lane 'go' on agent /picky/1 failed: ValueError: bad 4 "
                "(3 more at this site since the last report)",
            ]


async def test_failures_held_back_are_logged_when_the_plane_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="swimstream.agent"):
        async with open_plane({"/picky/:id": Picky}) as plane:
            for value in range(3):
                plane.submit("/picky/1", "go", value)
            await plane.settle()
            assert plane.statistics().callback_failures == 3
    assert _agent_lines(caplog) == [
        "on_command of lane 'go' on agent /picky/1 failed: ValueError: bad 0",
        "on_command of lane 'go' on agent /picky/1 failed: ValueError: bad 2 "
        "(1 more at this site since the last report)",
    ]
