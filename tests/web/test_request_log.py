"""aiohttp's tracebacks of malformed requests become one warning line per interval,
with the count of those left out."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import LineTooLong

from swimstream.web.request_log import REPORT_INTERVAL, SERVER_LOG, MalformedRequests


def _aiohttp_error() -> logging.LogRecord:
    error = LineTooLong(b"x" * 10, 8190)
    return logging.LogRecord(
        SERVER_LOG,
        logging.ERROR,
        __file__,
        1,
        "Error handling request",
        None,
        (type(error), error, None),
    )


def test_malformed_requests_are_one_warning_then_one_a_interval_with_a_count() -> None:
    now = [0.0]  # (a clock at 0 must not hold the first line back)
    requests = MalformedRequests(clock=lambda: now[0])
    first = _aiohttp_error()
    assert requests.filter(first)
    assert first.levelname == "WARNING" and first.exc_info is None
    assert first.getMessage() == (
        "a malformed request was answered 400: Got more than 8190 bytes when reading: "
        "b'xxxxxxxxxx'."
    )
    assert [requests.filter(_aiohttp_error()) for _ in range(3)] == [False] * 3
    now[0] += REPORT_INTERVAL
    later = _aiohttp_error()
    assert requests.filter(later)
    assert later.getMessage().endswith(" (3 more since the last report)")


def test_lines_of_other_errors_pass_as_they_are() -> None:
    requests = MalformedRequests(clock=lambda: 0.0)
    plain = logging.LogRecord(SERVER_LOG, logging.ERROR, __file__, 1, "ours", None, None)
    assert requests.filter(plain) and plain.getMessage() == "ours"
