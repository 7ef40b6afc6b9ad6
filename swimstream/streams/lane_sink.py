"""Lane sinks: every change of one lane, of every agent of one route, as records.

By default each change is a record the moment it happens. With ``coalesce`` set, a lane
sink behaves like Kafka Streams' record cache in front of a KTable: it keeps only the
latest change of each agent's lane (of each key, for a map lane) and produces those every
``coalesce`` seconds, and at every checkpoint's cut. A consumer that folds the records
per key (a compacted topic, a table, a dashboard) ends in the same state as with a record
per change, from far fewer records. Order stays right per agent: a change moves its slot
to the back, so the records leave in the order of their last change, and a map lane's
clear drops the changes queued before it.

Each record's delivery completes every change it stands for: the source offsets of the
records that caused them are committed only once the coalesced record is durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swimstream.agent import Lane, change_to_json
from swimstream.crdt import MapClear, MapPut, MapRemove, Op
from swimstream.metrics import MetricsRegistry
from swimstream.ratelimit import RateLimit, more_since
from swimstream.runtime.origin import Tracked, fork_origin
from swimstream.streams.connector import DeliveryCallback
from swimstream.streams.sinks import DeliveryFailures, SinkTarget

log = logging.getLogger("swimstream.sinks")

_WHOLE: Any = object()
"""The slot key of a change of the whole lane (a value, a counter, a map's clear): not
``None``, which is a map key like any other."""


@dataclass(slots=True)
class _Pending:
    """The latest change of one slot, and the acks of every change it stands for."""

    key: str
    node_uri: str
    lane: str
    value: Any
    acks: list[Tracked] = field(default_factory=list)


class _AllDone:
    """One delivery that completes several changes' acks."""

    __slots__ = ("_acks",)

    def __init__(self, acks: list[Tracked]) -> None:
        self._acks = acks

    def __call__(self, error: BaseException | None) -> None:
        for ack in self._acks:
            ack(error)


class _Unwritable:
    """Coalesced changes the sink's format cannot hold, or too large for the sink:
    counted in ``/metrics`` and logged as callback failures are, the first at once and
    then at most one line per :data:`~swimstream.ratelimit.LOG_INTERVAL` with the count
    of the others.

    Without a coalesce the same change fails its callback, which is counted and logged
    so; a coalesced one was logged once per agent and flush, uncounted: 300 records
    holding such a value made 300 error lines and no metric moved.
    """

    def __init__(
        self, registry: MetricsRegistry, topic: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._counter = registry.counter(
            "lane_sink_unwritable",
            "Coalesced lane changes a lane sink could not write (not in its format, or "
            "too large; not sent).",
            topic=topic,
        )
        self._limit = RateLimit[BaseException](clock=clock)

    def note(self, error: BaseException) -> None:
        """Count ``error``'s change; log it unless a line went out within the interval."""
        self._counter.value += 1
        more = self._limit.admit(error)
        if more is not None:
            log.error("%s%s", error, more_since(more))

    def report_held(self, everything: bool = False) -> None:
        """Log the changes held back once their interval is over (each flush asks), or
        now (``everything``: the sink stops), so a burst that ended does not read as one
        failure."""
        held = self._limit.take_held(everything)
        if held is not None:
            error, more = held
            log.error("%s%s", error, more_since(more))


class LaneSink:
    """A lane observer that writes the changes of one lane to a topic."""

    def __init__(
        self,
        target: SinkTarget,
        key_param: str,
        registry: MetricsRegistry,
        failures: DeliveryFailures,
        coalesce: float | None = None,
        checkpoint: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (seconds) paces the lines logged for changes the format cannot hold;
        tests pass their own."""
        self._target = target
        self._checkpoint = checkpoint
        """With durable state: the checkpoint open work belongs to, for the header
        ``swimstream.checkpoint`` (as published insights carry it)."""
        self._key_param = key_param
        self._failures = failures
        self.coalesce = coalesce
        """Seconds between flushes of the latest changes; None for a record per change
        (from :meth:`drain` on too)."""
        self._pending: dict[tuple[str, str, Any], _Pending] = {}
        self._counter = registry.counter(
            "insights_out", "Insight records produced.", topic=target.topic
        )
        self._unwritten = _Unwritable(registry, target.topic, clock)

    def __call__(self, lane: Lane, op: Op) -> None:
        agent = lane._agent
        node_uri = agent.node_uri
        key = node_uri if self._key_param == "uri" else agent.params.get(self._key_param, node_uri)
        value = change_to_json(lane, op)
        if self.coalesce is None:
            encoded = self._target.encode(value)  # raising fails the callback
            ack = fork_origin()
            try:
                self._produce(key, node_uri, lane.name, encoded, self._failures.tracked(ack))
            except BaseException:
                if ack is not None:  # nothing produced: the callback's error dead-letters it
                    ack(None)
                raise
            return
        ack = fork_origin()
        pending = self._pending
        slot = (node_uri, lane.name, op.key if isinstance(op, MapPut | MapRemove) else _WHOLE)
        entry = pending.pop(slot, None)
        if entry is None:
            entry = _Pending(key, node_uri, lane.name, value)
        else:
            entry.value = value
        if isinstance(op, MapClear):  # supersedes what the lane queued before it
            for earlier in [s for s in pending if s[0] == node_uri and s[1] == lane.name]:
                entry.acks += pending.pop(earlier).acks
        if ack is not None:
            entry.acks.append(ack)
        pending[slot] = entry  # at the back: records leave in the order of last change

    @property
    def pending(self) -> int:
        """Changes waiting for the next flush (coalesced sinks)."""
        return len(self._pending)

    def flush(self) -> None:
        """Produce the latest change of every slot changed since the last flush."""
        pending, self._pending = self._pending, {}
        tracked = self._failures.tracked
        for entry in pending.values():
            acks = entry.acks
            done = None if not acks else acks[0] if len(acks) == 1 else _AllDone(acks)
            try:
                value = self._target.encode(entry.value)
            except (TypeError, ValueError) as exc:  # nested over 254 levels, too large, ...
                self._unwritable(entry, exc, done)
                continue
            try:
                self._produce(entry.key, entry.node_uri, entry.lane, value, tracked(done))
            except Exception as exc:  # the client refused it: its queue stayed full, ...
                # As a record the broker never took: its changes' records stay
                # unfinished and the service stops, so a restart replays them. Raising
                # would lose the changes after it and, from the coalescing task, end
                # every later flush without a word.
                self._failures.failed(exc, f"a record of lane {entry.lane!r} of {entry.node_uri}")
        self._unwritten.report_held()

    def _unwritable(self, entry: _Pending, exc: Exception, done: DeliveryCallback | None) -> None:
        """A change the sink's format cannot hold is counted and logged (at most a line
        per interval: :class:`_Unwritable`) and completes its records' acks with the
        error, as a failed effect does; raising would fail the flush, lose the changes
        after it and, from the coalescing task, end every later flush."""
        error = TypeError(
            f"the change of lane {entry.lane!r} of {entry.node_uri} cannot be written to "
            f"{self._target.topic} as {self._target.format}: {exc}"
        )
        self._unwritten.note(error)
        if done is not None:
            done(error)

    def drain(self) -> None:
        """The service stops: flush now, and from now on produce each change at once.
        The records behind pending changes stay in flight until their coalesced record
        is delivered, and the stop waits for the records in flight: it waited for the
        next flush, up to the whole ``coalesce`` (or the drain's deadline, leaving them
        uncommitted, to be read and sent again after the restart)."""
        self.coalesce = None
        self.flush()

    async def run(self) -> None:
        """Flush every ``coalesce`` seconds until cancelled (then once more)."""
        interval = self.coalesce
        assert interval is not None
        try:
            while True:
                await asyncio.sleep(interval)
                self.flush()
        finally:
            self.flush()
            self._unwritten.report_held(everything=True)

    def _produce(
        self, key: str, node_uri: str, lane: str, value: bytes, on_delivery: DeliveryCallback
    ) -> None:
        headers = [("swimstream.node", node_uri.encode()), ("swimstream.lane", lane.encode())]
        if self._checkpoint is not None:
            headers.append(("swimstream.checkpoint", str(self._checkpoint()).encode()))
        self._target.connector.produce(
            self._target.topic, key.encode(), value, headers, on_delivery
        )
        self._counter.value += 1  # (after: a record the client refused was not produced)
