"""Callback failures: counted always, logged loudly but not endlessly.

A stream of bad records can make the same callback fail thousands of times a second.
Each distinct failure site (route, lane, callback) is logged with its traceback the
first time, then at most once per :data:`LOG_INTERVAL` seconds with the number of
failures since, so the log stays readable and the instance stays fast. The counts are
exact and exported as metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from swimstream.errors import failure_site

log = logging.getLogger("swimstream.agent")

LOG_INTERVAL = 10.0


@dataclass
class _Site:
    count: int = 0
    unlogged: int = 0
    last_logged: float = field(default=-LOG_INTERVAL)


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
        site = self._sites.setdefault((route, lane, callback), _Site())
        site.count += 1
        now = self._clock()
        if now - site.last_logged < LOG_INTERVAL:
            site.unlogged += 1
            return
        since = (
            f" ({site.unlogged} more at this site since the last report)" if site.unlogged else ""
        )
        first = site.count == 1  # (the traceback once: later reports are the same site)
        log.error(
            "%s failed: %s: %s%s",
            failure_site(node_uri, lane, callback),
            type(error).__name__,
            error,
            since,
            exc_info=(type(error), error, error.__traceback__) if first else None,
            extra={"node": node_uri, "lane": lane, "callback": callback},
        )
        site.last_logged = now
        site.unlogged = 0

    def by_site(self) -> dict[tuple[str, str, str], int]:
        """Failures per (route, lane, callback)."""
        return {key: site.count for key, site in self._sites.items()}
