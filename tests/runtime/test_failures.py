"""Callback failures are counted exactly and logged at most once per interval a site,
with the traceback the first time only (as the README says): every report after it
repeated the whole traceback of the same site."""

from __future__ import annotations

import logging

import pytest

from swimstream.runtime.failures import LOG_INTERVAL, FailureLog


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
