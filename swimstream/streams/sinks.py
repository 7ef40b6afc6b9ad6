"""Insights out: what agents publish, and lane sinks, become broker records.

``self.publish(name, value)`` goes to the sink that declares ``publish: name``; a lane
sink (``from: /device/:id#alerts``, :mod:`swimstream.streams.lane_sink`) turns the
changes of that lane into records keyed by the agent's id. Records are JSON (or raw
bytes/text with ``format: raw``) and carry headers naming the node and lane they came from.

Each record's delivery counts as an effect of the broker record being handled when it
was published (its origin), so the source offset is committed only once the insight is
durable. With durable state, each insight also carries ``swimstream.checkpoint``: the checkpoint
whose commit makes it visible (to tell apart, on brokers that show aborted transactions,
the copies a crash left behind). A delivery that finally fails (the client gave up after
its retries) is not acknowledged at all: the offset stays uncommitted, the failure is
counted, health turns red and the service stops (exit 1), and its restart replays the
record. With durable state at least once, offsets are committed by checkpoints rather
than record by record: the checkpoint whose flush saw the failure fails too (the sink's
``undelivered``), so no offset past the record is committed while the instance stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from swimstream.errors import BrokerError, ConfigError
from swimstream.metrics import MetricsRegistry
from swimstream.ratelimit import RateLimit, more_since
from swimstream.runtime import Insight
from swimstream.runtime.origin import fork_origin
from swimstream.streams.connector import SinkConnector

log = logging.getLogger("swimstream.sinks")


def encode_value(value: Any, record_format: str) -> bytes:
    """A sink record's value: JSON, or the bytes/text itself for ``raw``.

    ``raw`` takes bytes, text and numbers (their text) and refuses anything else with a
    TypeError (which fails the callback that wrote it): it wrote ``str(value)``, so an
    object went out as Python's spelling of it (``{'a': 1}``, ``None``, ``True``), which
    no consumer reads back."""
    if record_format == "raw":
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value).encode()
        raise TypeError(
            f"format raw writes bytes, text or a number, not {type(value).__name__}: "
            "use format json for other values"
        )
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


@dataclass(frozen=True, slots=True)
class SinkTarget:
    """Where one sink's records go."""

    topic: str
    format: str
    connector: SinkConnector
    max_bytes: int | None = None
    """The largest value and key written (None: no limit), as a source's records are
    held to: the client's record limit less the room kept for headers and encoding."""

    def encode(self, value: Any, key: bytes = b"") -> bytes:
        """``value`` in the sink's format; ValueError when it is larger than the sink
        writes. The client refused such a record at ``produce``, but with durable state
        exactly once, one published while a checkpoint commits is held and produced with
        the next transaction's start, where the refusal failed that checkpoint and
        stopped the instance; a coalesced lane sink's stopped it at every restart.

        ``key`` counts too: the margin below the client's limit is room for headers and
        an agent's id, not for a key of any size (``publish(..., key=...)`` takes any
        text). Counting the value only, a half-megabyte key passed, to be refused by the
        client as the value was."""
        encoded = encode_value(value, self.format)
        limit = self.max_bytes
        if limit is not None and len(encoded) + len(key) > limit:
            keyed = f" (a key of {len(key)} bytes and its value)" if key else ""
            raise ValueError(
                f"a record of {len(encoded) + len(key)} bytes{keyed} is over the {limit} "
                f"bytes a record of {self.topic} may hold"
            )
        return encoded


class DeliveryFailures:
    """Counts insight and dead-letter deliveries that failed for good (health reads it),
    and logs them as callback failures are: the first at once, then at most one line per
    :data:`~swimstream.ratelimit.LOG_INTERVAL` (a broker outage fails every record in
    flight).

    Their records stay unfinished, so no offset past them is committed and a restart
    replays them. That restart is what ``on_failure`` is for: the service stops (as Kafka
    Streams' default production handler does), since running on would only pile up
    records behind the unfinished one until the source paused for good.
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._counter = registry.counter(
            "insight_delivery_failures",
            "Insight and dead-letter records the broker never acknowledged.",
        )
        self._on_failure = on_failure
        self.last_error: BaseException | None = None
        self._limit = RateLimit[tuple[str, BaseException, bool]]()
        self._given_up = False

    def give_up(self) -> None:
        """The drain's deadline passed and the sinks close: records they fail from now
        on were in flight at the deadline, and their source records, never committed,
        are consumed again after the restart, which the contract allows. Counted and
        logged as a warning; they do not make the stop a failure (exit 1)."""
        self._given_up = True

    @property
    def count(self) -> int:
        return int(self._counter.value)

    def tracked(
        self, on_delivered: Callable[[BaseException | None], None] | None
    ) -> Callable[[BaseException | None], None]:
        """A delivery callback that completes ``on_delivered`` only on success."""
        if on_delivered is None:
            return self._report  # one bound method for every untracked record
        return _Delivered(self, on_delivered)

    def _report(self, error: BaseException | None) -> None:
        if error is not None:
            self.failed(error, "an insight record")

    def failed(self, error: BaseException, what: str) -> None:
        """Count and log ``what`` (a record the broker will never acknowledge)."""
        self._counter.value += 1
        self.last_error = error
        failure = (what, error, self._given_up)
        more = self._limit.admit(failure)
        if more is not None:
            _log_failure(*failure, more)
        if self._on_failure is not None and not self._given_up:
            self._on_failure(BrokerError(f"{what} was not delivered: {error}"))

    def report_held(self, everything: bool = False) -> None:
        """Log the last failure held back by the rate limit, with the count of the
        others, once its interval is over (at once with ``everything``, as the service
        stops): a burst of failures, as the records in flight at an outage all fail,
        otherwise read as one in the log."""
        held = self._limit.take_held(everything)
        if held is not None:
            (what, error, given_up), more = held
            _log_failure(what, error, given_up, more)


def _log_failure(what: str, error: BaseException, given_up: bool, more: int) -> None:
    if given_up:
        log.warning(
            "%s was not delivered by the drain deadline, so its source record was "
            "not committed and is consumed again after a restart: %s%s",
            what,
            error,
            more_since(more),
        )
    else:
        log.error("%s was not delivered: %s%s", what, error, more_since(more))


class _Delivered:
    """Completes one insight's ack once the broker acknowledged it; counts a failure.

    A small class rather than a closure: one is made per tracked record, and a nested
    ``def`` with annotations costs a dict per call.
    """

    __slots__ = ("_failures", "_on_delivered")

    def __init__(
        self, failures: DeliveryFailures, on_delivered: Callable[[BaseException | None], None]
    ) -> None:
        self._failures = failures
        self._on_delivered = on_delivered

    def __call__(self, error: BaseException | None) -> None:
        if error is None:
            self._on_delivered(None)
        else:
            self._failures._report(error)


class InsightPublisher:
    """The plane's publisher: routes ``publish(name, ...)`` to the declared sink."""

    def __init__(
        self,
        targets: Mapping[str, SinkTarget],
        registry: MetricsRegistry,
        failures: DeliveryFailures,
        listeners: list[Callable[[Insight], None]] | None = None,
        checkpoint: Callable[[], int] | None = None,
    ) -> None:
        self._targets = dict(targets)
        self._failures = failures
        self._listeners = listeners if listeners is not None else []
        self._checkpoint = checkpoint
        self._counters = {
            name: registry.counter("insights_out", "Insight records produced.", topic=t.topic)
            for name, t in self._targets.items()
        }

    def __call__(self, insight: Insight) -> None:
        target = self._targets.get(insight.topic)
        if target is None:
            known = ", ".join(sorted(self._targets)) or "none"
            raise ConfigError(
                f"publish({insight.topic!r}): no sink declares `publish: {insight.topic}` "
                f"(declared: {known}); add it to the sinks of the app config"
            )
        headers = [("swimstream.node", insight.node_uri.encode())]
        if self._checkpoint is not None:
            headers.append(("swimstream.checkpoint", str(self._checkpoint()).encode()))
        key = insight.key.encode()
        value = target.encode(insight.value, key)  # raising fails the callback
        ack = fork_origin()
        try:
            target.connector.produce(target.topic, key, value, headers, self._failures.tracked(ack))
        except BaseException:
            if ack is not None:  # nothing produced: the callback's error dead-letters the record
                ack(None)
            raise
        # Counted once the client took it: a value JSON cannot write (a set) or a record
        # the client refused fails the callback, and was counted as produced.
        self._counters[insight.topic].value += 1
        for listener in self._listeners:
            listener(insight)
