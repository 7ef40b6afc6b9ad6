"""Callback failures: counted always, logged loudly but not endlessly.

A stream of bad records can make the same callback fail thousands of times a second.
Each distinct failure site (route, lane, callback) is logged with its traceback the
first time, then at most once per :data:`~swimstream.ratelimit.LOG_INTERVAL` seconds
with the number of failures since, so the log stays readable and the instance stays
fast. The counts are exact and exported as metrics.

Failures held back inside an interval are reported once it is over even if that site
never fails again (:meth:`FailureLog.report_held`, from the plane's housekeeping), and
at the latest when the plane closes: a burst that ended would otherwise show as one
line, and an operator would believe it failed once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from swimstream.errors import failure_site
from swimstream.ratelimit import LOG_INTERVAL, RateLimit, more_since
from swimstream.text import error_text

log = logging.getLogger("swimstream.agent")

_Held = tuple[str, BaseException]
"""A failure held back: the agent's node URI and the error."""


@dataclass
class _Site:
    limit: RateLimit[_Held]
    count: int = 0


class FailureLog:
    """Counts callback failures per site and rate-limits their log lines."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` (seconds) paces the log lines; tests pass their own."""
        self._clock = clock
        self.count = 0
        self._sites: dict[tuple[str, str, str], _Site] = {}
        self.last_error: BaseException | None = None

    def record(
        self, node_uri: str, route: str, lane: str, callback: str, error: BaseException
    ) -> None:
        """Count one failure of ``callback`` on ``lane`` of the agent at ``node_uri``."""
        self.count += 1
        self.last_error = error
        site = self._sites.get((route, lane, callback))
        if site is None:
            site = self._sites[route, lane, callback] = _Site(RateLimit(LOG_INTERVAL, self._clock))
        site.count += 1
        more = site.limit.admit((node_uri, error))
        if more is not None:
            first = site.count == 1  # (the traceback once: later reports are the same site)
            _log(node_uri, lane, callback, error, more, first)

    def report_held(self, everything: bool = False) -> int:
        """Log the failures held back at each site whose interval is over (every site
        when ``everything``, as the plane closes); returns how many lines that took.

        Each line names the last failure held back, with the count of the others, as a
        line for a new failure would have: the total in the log is exact.
        """
        lines = 0
        for (_route, lane, callback), site in self._sites.items():
            held = site.limit.take_held(everything)
            if held is not None:
                (node_uri, error), more = held
                _log(node_uri, lane, callback, error, more, False)
                lines += 1
        return lines

    def by_site(self) -> dict[tuple[str, str, str], int]:
        """Failures per (route, lane, callback)."""
        return {key: site.count for key, site in self._sites.items()}


def _log(
    node_uri: str, lane: str, callback: str, error: BaseException, more: int, traceback: bool
) -> None:
    log.error(
        "%s failed: %s: %s%s",
        failure_site(node_uri, lane, callback),
        type(error).__name__,
        error_text(error),
        more_since(more, " at this site"),
        exc_info=(type(error), error, error.__traceback__) if traceback else None,
        extra={"node": node_uri, "lane": lane, "callback": callback},
    )
