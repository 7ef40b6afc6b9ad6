"""aiohttp's log of requests it could not even parse, made fit for a public port.

aiohttp answers a malformed request (a URL or header over 8 KiB, a bad chunk size, an
unknown Content-Encoding) with 400 itself, before any handler runs, and logs it at
ERROR with a full traceback. The fault is the client's and any client can send such
requests at will: a flood of tracebacks would bury the instance's own errors. So these
lines become one WARNING naming the problem, at most one every
:data:`REPORT_INTERVAL` seconds with a count of those left out.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

REPORT_INTERVAL = 10.0
"""Seconds between two reported malformed requests."""


class MalformedRequests(logging.Filter):
    """Rewrites aiohttp's tracebacks of malformed requests (installed by :func:`install`)."""

    def __init__(self) -> None:
        super().__init__()
        self._last = -REPORT_INTERVAL
        self._unreported = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True  # an error of ours: as aiohttp logs it
        now = time.monotonic()
        if now - self._last < REPORT_INTERVAL:
            self._unreported += 1
            return False
        more = f" ({self._unreported} more since the last report)" if self._unreported else ""
        self._last, self._unreported = now, 0
        problem = " ".join(str(error.message or error).split())[:200]
        record.msg = "a malformed request was answered %d: %s%s"
        record.args = (error.code, problem, more)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


def install() -> None:
    """Put the filter on aiohttp's server log, once per process."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in logger.filters):
        logger.addFilter(MalformedRequests())
