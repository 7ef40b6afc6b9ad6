"""aiohttp's log of requests it could not even parse, made fit for a public port.

aiohttp answers a malformed request (a URL or header over 8 KiB, a bad chunk size)
with 400 itself, before any handler runs, and logs it at ERROR with a full traceback. A
chunked body whose framing breaks is found later, while it is read: the handler answers
400 (or never reads it), and aiohttp, draining the rest of the body after the answer,
fails on it again and logs "Unhandled exception" with a traceback of chained errors.
(Coded bodies no longer come here: aiohttp hands them over as sent, and
:mod:`~.body_coding` decodes the ones a handler reads.)

The fault is the client's in both cases, and any client can send such requests at
will: a flood of tracebacks would bury the instance's own errors. So these lines become
one WARNING naming the problem, at most one every :data:`REPORT_INTERVAL` seconds with
a count of those left out. Each server installs its own filter for as long as it runs
(:func:`install`, :func:`uninstall`), so the count starts afresh with each server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from swimstream.ratelimit import RateLimit, more_since

REPORT_INTERVAL = 10.0
"""Seconds between two reported malformed requests."""

SERVER_LOG = "aiohttp.server"


def body_problem(error: BaseException) -> str | None:
    """One line saying why aiohttp could not read a request body (corrupt gzip, a bad
    chunk), or None when ``error`` is no such failure."""
    cause = error.__cause__ if isinstance(error, RequestPayloadError) else None
    if not isinstance(cause, HttpProcessingError):
        return None
    problem = " ".join(str(cause.message or cause).split())
    reason = cause.__cause__ or cause.__context__  # the decompressor's own, as zlib's
    if reason is not None:
        problem += f" ({reason})"
    return problem[:200]


class MalformedRequests(logging.Filter):
    """Rewrites aiohttp's tracebacks of malformed requests (installed by :func:`install`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` (seconds) paces the lines; tests pass their own."""
        super().__init__()
        self._limit = RateLimit[tuple[str, tuple[object, ...]]](REPORT_INTERVAL, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        if isinstance(error, HttpProcessingError):
            problem = " ".join(str(error.message or error).split())[:200]
            message, args = "a malformed request was answered %d: %s%s", [error.code, problem]
        else:
            body = body_problem(error)
            if body is None:
                return True  # an error of ours: as aiohttp logs it
            message, args = "a request body could not be read, its connection closed: %s%s", [body]
        more = self._limit.admit((message, tuple(args)))
        if more is None:
            return False
        record.msg = message
        record.args = (*args, more_since(more))
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True

    def report_held(self) -> None:
        """Log the last request held back, with the count of the others, now (its
        server stops): a burst of them at the end otherwise read as one in the log."""
        held = self._limit.take_held(everything=True)
        if held is not None:
            (message, args), more = held
            logging.getLogger(SERVER_LOG).warning(message, *args, more_since(more))


def install() -> MalformedRequests:
    """Put a filter on aiohttp's server log; :func:`uninstall` it when the server stops."""
    log_filter = MalformedRequests()
    logging.getLogger(SERVER_LOG).addFilter(log_filter)
    return log_filter


def uninstall(log_filter: MalformedRequests) -> None:
    """Take a filter :func:`install` put on aiohttp's server log off it again, logging
    what it held back."""
    logging.getLogger(SERVER_LOG).removeFilter(log_filter)
    log_filter.report_held()
