"""Whether a source has caught up with its partitions: what ``/readyz`` waits for.

A source is ready once, holding partitions, it was at their ends at least once: every
assigned partition's end known and none behind it. Kafka's client learns a partition's
end from its first fetch, so right after an assignment an end is unknown, which is not
the same as caught up; a partition no fetch tells the end of (a broker that never
answers for it) would keep an instance unready in silence, so it is named in a warning
after :data:`ENDS_UNKNOWN_WARNING` seconds. Partitions paused for their restore are
expected to wait, and are not named.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Set

from swimstream.logfields import partition_fields
from swimstream.streams.connector import SourceConnector, TopicPartition
from swimstream.text import counted, partition_list

log = logging.getLogger("swimstream.source")

ENDS_UNKNOWN_WARNING = 30.0
"""Seconds an assigned partition (not restoring) may go without its end known before
the source warns that readiness waits for it."""


class CatchUp:
    """Follows whether source ``name`` on ``connector`` has caught up once.

    ``unrouted`` gives, per partition, the offset of the first record the runner took
    from the connector and holds unrouted (behind a full mailbox, or for a restore):
    the connector's position is past those, but they are still to be read.
    """

    def __init__(
        self,
        name: str,
        connector: SourceConnector,
        unrouted: Callable[[], Mapping[TopicPartition, int]] = dict,
    ) -> None:
        self._name = name
        self._connector = connector
        self._unrouted = unrouted
        self.caught_up = False
        """At the ends of every assigned partition at least once (it stays so: a
        backlog that comes later is lag, not unreadiness)."""
        self._ends_unknown_since: float | None = None
        self._ends_warned = False

    def lag(self) -> dict[TopicPartition, int]:
        """Records behind the high watermark, per assigned partition whose watermark and
        position are both known (a partition missing here is unknown, not caught up)."""
        positions = dict(self._connector.positions())
        for tp, offset in self._unrouted().items():
            if tp in positions:
                positions[tp] = min(positions[tp], offset)
        return {
            tp: max(0, high - positions[tp])
            for tp, high in self._connector.high_watermarks().items()
            if tp in positions
        }

    def assigned(self) -> None:
        """Partitions were assigned: a partition's end unknown from now on is new."""
        self._ends_unknown_since, self._ends_warned = None, False

    def check(self, restoring: Set[TopicPartition]) -> None:
        """Look again (the source found nothing to fetch); ``restoring``: partitions
        paused for their restore, whose ends may stay unknown meanwhile."""
        connector = self._connector
        assigned = connector.assignment()
        if self.caught_up or not assigned:
            return
        lag = self.lag()
        if connector.reports_watermarks and not lag.keys() >= assigned:
            # No fetch has told every partition's end yet: right after assignment.
            self._note_ends_unknown(assigned - lag.keys() - restoring)
            return
        if not any(lag.values()):
            self.caught_up = True
            log.info(
                "%s caught up with %s",
                self._name,
                counted(len(assigned), "partition"),
                extra=partition_fields(assigned),
            )

    def _note_ends_unknown(self, unknown: Set[TopicPartition]) -> None:
        """Warn when partitions go :data:`ENDS_UNKNOWN_WARNING` seconds without a fetch
        telling their end (once per assignment, until the source first caught up): the
        first fetch should, in well under a second, and readiness waits for it."""
        if not unknown or self._ends_warned:
            return
        now = time.monotonic()
        if self._ends_unknown_since is None:
            self._ends_unknown_since = now
        elif now - self._ends_unknown_since >= ENDS_UNKNOWN_WARNING:
            self._ends_warned = True
            log.warning(
                "%s is not ready: no fetch has told the end of %s in %.0f s",
                self._name,
                partition_list(unknown),
                now - self._ends_unknown_since,
                extra=partition_fields(unknown),
            )
