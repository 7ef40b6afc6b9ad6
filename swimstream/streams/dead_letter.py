"""The dead-letter topic: bad records, kept with the reason, never dropped.

A record that cannot be decoded, cannot be routed, or whose callback raised is copied to
``<app>.dead-letter`` unchanged (same key, value and headers) with headers that say why
and where it came from, so an operator can inspect, fix and replay it. The instance goes
on with the next record: bad input never stops a partition.

Headers added (all UTF-8 text)::

    swimstream.error            the reason, one line
    swimstream.error.type       the exception's class name
    swimstream.origin.topic     source topic
    swimstream.origin.partition source partition
    swimstream.origin.offset    source offset
    swimstream.route            only from a topic with several routes: the route (its
                                template and lane, ``/device/{key}#reading``) that
                                failed; the others took the record
    swimstream.origin.id        only from a broker without integer offsets (Pulsar): the
                                record's id there, as its tools print it; the offset is
                                then the source's own count, which restarts with it
    swimstream.value.dropped    only when the value was left out: its size and why
    swimstream.headers.dropped  only when the record's own headers were left out
    swimstream.key.dropped      only when the key was left out: its size and SHA-256

A record too large for the dead-letter topic itself is sent without its largest parts
(value, key, the record's own headers), as few as it takes to fit (the headers added
say where the original is) rather than failing the instance. A dead letter the
broker does not take (the topic deleted, a timeout) is counted with the undelivered
insights (:class:`~swimstream.streams.sinks.DeliveryFailures`): its record stays
unfinished, so no offset past it is committed, ``/healthz`` turns unhealthy, and the
restart that follows tries the record again. Counting the record done would drop it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from swimstream.errors import CallbackError
from swimstream.metrics import MetricsRegistry
from swimstream.ratelimit import RateLimit, more_since
from swimstream.streams.connector import InboundRecord, SinkConnector
from swimstream.streams.sinks import DeliveryFailures
from swimstream.text import error_text

log = logging.getLogger("swimstream.dead_letter")

REASON_LIMIT = 1000
"""Reasons are cut to this many characters: a header is no place for a novel."""

LETTER_HEADERS = frozenset(
    "swimstream." + name
    for name in (
        "error",
        "error.type",
        "origin.topic",
        "origin.partition",
        "origin.offset",
        "origin.id",
        "route",
        "headers.unreadable",
        "value.dropped",
        "headers.dropped",
        "key.dropped",
    )
)
"""The headers a dead letter gets. A record replayed from the dead-letter topic that
fails again came with an earlier letter's: they are left out, so that each name is in a
letter once, saying what this failure was (a reader taking the first would have read the
earlier one)."""


def reason_of(error: BaseException) -> str:
    """One line saying why a record failed (the user's exception for callback errors)."""
    if isinstance(error, CallbackError) and error.__cause__ is not None:
        cause = error.__cause__
        text = f"{error}: {type(cause).__name__}: {error_text(cause)}"
    else:
        said = error_text(error)
        name = type(error).__name__
        text = said if said.startswith(name) else f"{name}: {said}"
    text = " ".join(text.split())
    if not text.isascii():
        # A lone surrogate (in text a callback read from a raw record with Python's json,
        # or with ``surrogateescape``) has no UTF-8: the header's encode raised in the
        # agents' loop, which stopped the instance, at every restart (the record came
        # again). Written as its escape, ``\ud800``, as json.dumps writes it.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


class DeadLetters:
    """Sends failed records to the dead-letter topic and counts them."""

    def __init__(
        self,
        sink: SinkConnector,
        topic: str,
        registry: MetricsRegistry,
        max_value_bytes: int | None = None,
        failures: DeliveryFailures | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (seconds) paces the log lines: the first at once, then at most one
        per :data:`~swimstream.ratelimit.LOG_INTERVAL`; tests pass their own."""
        self._sink = sink
        self._failures = failures if failures is not None else DeliveryFailures(registry)
        self.topic = topic
        self.max_value_bytes = max_value_bytes
        """Bytes a letter's key, value and the record's own headers may take together (None:
        no limit); past it they are left out in that order (see :func:`_fitted`)."""
        self._counter = registry.counter(
            "dead_letters",
            "Records sent to the dead-letter topic (undecodable, unroutable or failed).",
        )
        self._limit = RateLimit[tuple[str | None, int | None, int | None, str]](clock=clock)

    def send(
        self,
        record: InboundRecord,
        error: BaseException,
        on_delivery: Callable[[BaseException | None], None] | None = None,
        route: str | None = None,
    ) -> None:
        """Copy ``record`` to the dead-letter topic with ``error`` as the reason (and
        ``route``, the one that failed, for a topic with several); ``on_delivery(None)``
        once the broker took it, never if it does not."""
        reason = reason_of(error)
        kind = type(
            error.__cause__ if isinstance(error, CallbackError) and error.__cause__ else error
        )
        try:
            kept = [h for h in record.headers() or () if h[0] not in LETTER_HEADERS]
            unreadable = None
        except Exception as exc:
            # confluent-kafka decodes each header name as UTF-8 and raises on another
            # (a C or Go producer may write any bytes): the letter goes without them.
            kept = []
            unreadable = ("swimstream.headers.unreadable", reason_of(exc).encode())
        key, value, headers, dropped = _fitted(
            record.key(), record.value(), kept, self.max_value_bytes
        )
        headers += dropped
        if unreadable is not None:
            headers.append(unreadable)
        headers += [
            ("swimstream.error", reason.encode()),
            ("swimstream.error.type", kind.__name__.encode()),
            ("swimstream.origin.topic", (record.topic() or "").encode()),
            ("swimstream.origin.partition", str(record.partition()).encode()),
            ("swimstream.origin.offset", str(record.offset()).encode()),
        ]
        if route is not None:
            headers.append(("swimstream.route", route.encode()))
        origin_id = getattr(record, "origin_id", None)
        if origin_id is not None:
            headers.append(("swimstream.origin.id", origin_id().encode()))
        where = (
            f"the dead letter of {record.topic()}[{record.partition()}]@{record.offset()}"
            f" (dead-lettered for {reason})"
        )
        delivered = _LetterDelivered(self._failures, where, on_delivery)
        try:
            self._sink.produce(self.topic, key, value, headers, delivered)
        except Exception as exc:  # a full queue that never drained, a refused record
            # Counted and logged there, with the reason, as not delivered: it is not in
            # the topic, so not logged as dead-lettered.
            delivered(exc)
        else:
            self._counter.value += 1
            self._log(record, reason)

    def report_held(self, everything: bool = False) -> None:
        """Log the last letter held back by the rate limit, with the count of the others,
        once its interval is over (at once with ``everything``, as the source stops): a
        burst of bad records that ended otherwise read as one in the log."""
        held = self._limit.take_held(everything)
        if held is not None:
            (topic, partition, offset, reason), more = held
            self._write(topic, partition, offset, reason, more)

    def _log(self, record: InboundRecord, reason: str) -> None:
        letter = (record.topic(), record.partition(), record.offset(), reason)
        more = self._limit.admit(letter)
        if more is not None:
            self._write(*letter, more)

    def _write(
        self, topic: str | None, partition: int | None, offset: int | None, reason: str, more: int
    ) -> None:
        log.warning(
            "dead-lettered %s[%s]@%s to %s: %s%s",
            topic,
            partition,
            offset,
            self.topic,
            reason,
            more_since(more),
            extra={"topic": topic, "partition": partition, "offset": offset},
        )


class _LetterDelivered:
    """Completes a dead letter's record on delivery; counts a failure and leaves it."""

    __slots__ = ("_failures", "_on_delivery", "_where")

    def __init__(
        self,
        failures: DeliveryFailures,
        where: str,
        on_delivery: Callable[[BaseException | None], None] | None,
    ) -> None:
        self._failures = failures
        self._where = where
        self._on_delivery = on_delivery

    def __call__(self, error: BaseException | None) -> None:
        if error is not None:
            self._failures.failed(error, self._where)
        elif self._on_delivery is not None:
            self._on_delivery(None)


Header = tuple[str, bytes]


def _fitted(
    key: bytes | None, value: bytes | None, headers: list[Header], limit: int | None
) -> tuple[bytes | None, bytes | None, list[Header], list[Header]]:
    """The key, value and headers a dead letter can carry within ``limit`` bytes, and
    a header naming each part left out, the largest first, as few as it takes. A letter
    the broker refuses stops the instance, and the same record then stops every start;
    one missing a part still says where the record is."""
    sizes = {
        "value": len(value or b""),
        "headers": sum(len(name.encode()) + len(held or b"") for name, held in headers),
        "key": len(key or b""),
    }
    dropped: list[Header] = []
    if limit is None:
        return key, value, headers, dropped
    for part in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if sum(sizes.values()) <= limit or not sizes[part]:
            break
        note = f"{sizes[part]} bytes, over the {limit}-byte limit"
        if part == "value":
            value = None
        elif part == "headers":
            note = f"{len(headers)} headers, {note}"
            headers = []
        else:
            note = f"{note}; sha256 {hashlib.sha256(key or b'').hexdigest()}"
            key = None
        dropped.append((f"swimstream.{part}.dropped", note.encode()))
        sizes[part] = 0
    return key, value, headers, dropped
