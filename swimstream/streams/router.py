"""From a consumed record to a command on an agent's lane.

For each record: decode its value in the source's format, render the source's route
template into a node URI, and submit the value to the configured command lane with the
record's ack (:mod:`swimstream.streams.tracking`). Whatever goes wrong on the
way (invalid JSON, a missing route field, a route no agent answers) sends the record to
the dead-letter topic with the reason instead: routing never raises into the source
loop.

This is the hot path of the service, so it avoids per-record work it can hoist: routes
are grouped by topic once, headers are read only by templates that use them, a record is
decoded once per format even when several sources share its topic, and a template that
reads only the record key (``/device/{key}``, the usual one) renders each key once: the
same keys come back all the time, and a dict look-up costs a tenth of a rendering. The
source loop hands over each fetched batch in one call (:meth:`RecordRouter.route_batch`),
which does per run of a partition's records what :meth:`RecordRouter.route` does per
record (the tracker, the route, the inline ack, the records counter) and routes each
record of the run in its loop, without a call of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from swimstream.errors import (
    AgentRestoreError,
    RecordDecodeError,
    RecordRoutingError,
    RecordTooLargeError,
    RoutingError,
    SwimstreamError,
)
from swimstream.metrics import Counter, MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import Plane
from swimstream.streams.connector import InboundRecord, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.tracking import (
    InlineAck,
    OffsetBook,
    PartitionTracker,
    RouteAck,
    record_ack,
)

Decoder = Callable[[bytes | None], Any]

NODE_URI_LIMIT = 16_384
"""Characters a node URI made from a record may have: it names the agent's state in every
changelog key and insight header, which a record size limit bounds (a megabyte key routed
by ``{key}`` made an agent whose every checkpoint failed, at every restart)."""

NODE_CACHE_SIZE = 65_536
"""Node URIs remembered per key-only route; emptied when full (a few MiB at most)."""


def within(limit: int, fmt: str) -> Decoder:
    """The decoder of source format ``fmt`` (``json`` decodes, ``raw`` passes the bytes
    on), refusing values over ``limit`` bytes with RecordTooLargeError and naming what
    else is wrong with RecordDecodeError. The size is checked where the value is looked
    at anyway: that costs the per-record path least."""
    if fmt == "raw":

        def decode_raw_within(value: bytes | None) -> Any:
            if value is not None and len(value) > limit:
                raise too_large(value, limit)
            return value

        return decode_raw_within

    larger = min(limit, NESTABLE_BYTES)  # the usual record is smaller: one comparison

    def decode_json_within(value: bytes | None) -> Any:
        if value is None:
            raise RecordDecodeError("record has no value (a tombstone?); a JSON source needs one")
        if len(value) > larger:
            return _decode_larger(value, limit)
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RecordDecodeError(f"invalid JSON: {exc}") from exc

    return decode_json_within


def _decode_larger(value: bytes, limit: int) -> Any:
    """A JSON record long enough to be over ``limit`` or nested over :data:`MAX_NESTING`
    levels, decoded (or refused, saying which)."""
    if len(value) > limit:
        raise too_large(value, limit)
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordDecodeError(f"invalid JSON: {exc}") from exc
    if len(value) > NESTABLE_BYTES and value.count(b"[") + value.count(b"{") > MAX_NESTING:
        _check_nesting(decoded)
    return decoded


MAX_NESTING = 254
"""Levels of nesting a JSON record may have: orjson reads 1,024 but writes 254, and what
an agent keeps of a record must be served back (GET, streams, sinks), as an HTTP
command's body must (:mod:`swimstream.web.lanes`)."""

NESTABLE_BYTES = 2 * MAX_NESTING + 1
"""No more bytes than this hold JSON nested over :data:`MAX_NESTING` (each level opens
and closes): the usual record is shorter and costs nothing more, and a longer one two
byte counts before anything is encoded."""


def _check_nesting(decoded: Any) -> None:
    """Raise RecordDecodeError when ``decoded`` is nested over :data:`MAX_NESTING` levels.

    Taken, such a record failed every read of the lane that kept it, over HTTP, in
    streams and sinks, and after every restart: it is refused as it arrives instead."""
    try:
        orjson.dumps(decoded)  # (a decoded value is JSON: only its depth can fail)
    except orjson.JSONEncodeError:
        raise RecordDecodeError(
            f"JSON nested over {MAX_NESTING} levels: it could not be written back as JSON "
            "(lane reads, streams, sinks)"
        ) from None


NO_LIMIT = 1 << 62
DECODERS: dict[str, Decoder] = {"json": within(NO_LIMIT, "json"), "raw": within(NO_LIMIT, "raw")}
"""The decoders of each source ``format``, without a size limit."""


def too_large(value: bytes, limit: int) -> RecordTooLargeError:
    return RecordTooLargeError(
        f"record value is {len(value):,} bytes, over the {limit:,} the sinks can write"
        " (its state and insights could not be stored or sent)"
    )


@dataclass(frozen=True, slots=True)
class SourceRoute:
    """One configured source: its topic's records go to ``lane`` of the rendered node."""

    topic: str
    template: RouteTemplate
    lane: str
    format: str = "json"

    @property
    def label(self) -> str:
        """The route as a dead letter names it: ``/device/{key}#reading``."""
        return f"{self.template}#{self.lane}"


class RecordRouter:
    """Routes records of every source topic; shared by all source loops."""

    def __init__(
        self,
        plane: Plane,
        routes: Sequence[SourceRoute],
        dead_letters: DeadLetters,
        registry: MetricsRegistry,
        max_record_bytes: int | None = None,
    ) -> None:
        self._plane = plane
        self._dead_letters = dead_letters
        self._max_bytes = max_record_bytes if max_record_bytes is not None else NO_LIMIT
        self._by_topic: dict[str, tuple[SourceRoute, ...]] = {}
        for route in routes:
            self._by_topic[route.topic] = (*self._by_topic.get(route.topic, ()), route)
        # What a dead letter of a topic with several routes names: the route that failed,
        # or every route of a format the record could not be decoded as.
        self._labels = {
            (topic, fmt): ", ".join(r.label for r in group if r.format == fmt)
            for topic, group in self._by_topic.items()
            for fmt in {r.format for r in group}
        }
        self._needs_headers = {
            topic: any("header" in r.template.roots for r in group)
            for topic, group in self._by_topic.items()
        }
        self._records = {
            topic: registry.counter(
                "records_in", "Records consumed from source topics.", topic=topic
            )
            for topic in self._by_topic
        }
        # The usual case, one route for a topic, takes a path without the loop over
        # routes and the cache of decoded values; its node URIs are cached by key when
        # the key is all its template reads.
        self._single: dict[str, _SingleRoute] = {
            topic: (
                group[0],
                DECODERS[group[0].format]
                if max_record_bytes is None
                else within(max_record_bytes, group[0].format),
                self._records[topic],
                {} if group[0].template.roots == {"key"} else None,
                -1 if group[0].format != "json" else min(self._max_bytes, NESTABLE_BYTES),
            )
            for topic, group in self._by_topic.items()
            if len(group) == 1
        }

    @property
    def topics(self) -> list[str]:
        """The source topics this router has routes for."""
        return list(self._by_topic)

    def route(self, record: InboundRecord, tracker: PartitionTracker) -> str | None:
        """Submit ``record`` (or dead-letter it); returns the node URI of a target whose
        mailbox is now full (the caller should pause), else None."""
        topic = record.topic() or ""
        offset = record.offset() or 0
        single = self._single.get(topic)
        if single is not None:
            route, decode, records, nodes, _ = single
            records.value += 1
            inline = tracker.inline or self._inline_for(tracker)  # (see ``InlineAck``)
            inline.record = record
            inline.offset = offset
            inline.tracked = None
            tracker.routed = offset + 1
            try:
                value = decode(record.value())
                key = record.key()
                node = None if nodes is None else nodes.get(key)
                if node is None:
                    node = self._render(route, record, key, value, nodes)
                # (``now`` passed by position: a call with a keyword costs about 200
                # machine instructions more, once a record)
                if self._plane.submit(node, route.lane, value, inline, True):
                    return None
            except (RecordDecodeError, RoutingError, AgentRestoreError) as exc:
                inline(exc)
                return None
            finally:
                if inline.record is not None:
                    inline.kept()  # (queued, running async, or the router raised)
            return node
        group = self._by_topic[topic]
        self._records[topic].value += 1
        raw = record.value()
        oversized = raw is not None and len(raw) > self._max_bytes
        commands = 1 if oversized else len(group)
        ack = record_ack(tracker, record, offset, self._dead_letters, commands=commands)
        if oversized:
            ack(too_large(raw or b"", self._max_bytes))
            return None
        submit = self._plane.submit
        full = None
        decoded: dict[str, Any] = {}
        unreadable: RecordDecodeError | None = None
        try:
            headers = self._headers_of(record, topic)
        except RecordDecodeError as exc:  # fails the routes over a header, not the others
            headers, unreadable = _NO_HEADERS, exc
        for route in group:
            label = route.label
            try:
                value = decoded.get(route.format, _UNSET)
                if value is _UNSET:
                    try:
                        value = decoded[route.format] = DECODERS[route.format](raw)
                    except RecordDecodeError:
                        decoded[route.format] = _UNDECODABLE
                        label = self._labels[topic, route.format]
                        raise
                elif value is _UNDECODABLE:
                    ack(None)  # dead-lettered once already, by the first route of its format
                    continue
                if unreadable is not None and "header" in route.template.roots:
                    raise RecordDecodeError(str(unreadable))
                node = route.template.render(
                    record.key(), value, headers, topic, record.partition() or 0
                )
                if len(node) > NODE_URI_LIMIT:
                    raise _too_long(node)
                if not submit(node, route.lane, value, RouteAck(ack, label), now=True):
                    full = node
            except (RecordDecodeError, RoutingError, AgentRestoreError) as exc:
                ack.failed(exc, label)
            except SwimstreamError:
                raise  # the plane is closed: the service is stopping
        return full

    def route_batch(self, records: Sequence[InboundRecord], start: int, book: OffsetBook) -> Stop:
        """Route ``records[start:]`` as :meth:`route` would one by one, each with its
        partition's tracker from ``book``, until one of them needs its caller: returns
        where it stopped (see :data:`Stop`).

        The source loop's path: a fetched batch holds runs of one partition's records,
        so the tracker, the route and the inline ack are looked up once a run, the
        records counter and the tracker's routed position set once a run, and a record
        costs no call of its own (a call and the loop's checks were about a tenth of
        the framework's own cost of a record). The plane notes the time once, for the
        recency of every agent the batch runs (``Plane.note_time``)."""
        self._plane.note_time()
        end = len(records)
        index = start
        while index < end:
            record = records[index]
            topic = record.topic() or ""
            tracker = book.tracker(TopicPartition(topic, record.partition() or 0))
            if tracker.replayed_to is not None:
                return index, tracker, None  # (its records may have been applied already)
            single = self._single.get(topic)
            if single is None:
                index += 1
                full = self.route(record, tracker)
            else:
                index, full = self._route_run(records, index, tracker, single)
            if full is not None:
                return index, tracker, full
        return index, None, None

    def _route_run(
        self,
        records: Sequence[InboundRecord],
        index: int,
        tracker: PartitionTracker,
        single: _SingleRoute,
    ) -> tuple[int, str | None]:
        """Route the run of records of ``tracker``'s partition from ``index`` (a topic
        with one route), as :meth:`route`'s first branch does each; returns the index
        after the run, or after the record that filled its target's mailbox with that
        target's node URI."""
        route, decode, counter, nodes, plain = single
        loads = orjson.loads
        topic, partition = tracker.tp
        run_now, submit = self._plane.run_now, self._plane.submit
        lane = route.lane
        inline = tracker.inline or self._inline_for(tracker)
        end = len(records)
        first = index
        offset = -1
        full = None
        try:
            while index < end:
                record = records[index]
                if record.partition() != partition or record.topic() != topic:
                    break  # (the next run: the same topic's partition, mostly)
                offset = record.offset() or 0
                inline.record = record
                inline.offset = offset
                inline.tracked = None
                index += 1
                try:
                    raw = record.value()
                    if raw is not None and len(raw) <= plain:  # (``decode``'s usual case)
                        try:
                            value = loads(raw)
                        except orjson.JSONDecodeError:
                            value = decode(raw)  # (raises its RecordDecodeError)
                    else:
                        value = decode(raw)
                    key = record.key()
                    if nodes is None:
                        node = self._render(route, record, key, value, nodes)
                    else:  # (a subscript, not ``get``: as ``Plane.run_now`` looks up)
                        try:
                            node = nodes[key]
                        except KeyError:
                            node = self._render(route, record, key, value, nodes)
                    # (``Plane.run_now`` first, the usual case; ``submit`` loads the
                    # agent, runs it at once under its one spelling, or queues)
                    if not run_now(node, lane, value, inline) and not submit(
                        node, lane, value, inline, True
                    ):
                        full = node  # (queued: its ack is kept below)
                except (RecordDecodeError, RoutingError, AgentRestoreError) as exc:
                    inline(exc)
                if inline.record is not None:
                    inline.kept()  # (queued or running async: the partition arms another)
                    inline = tracker.inline or self._inline_for(tracker)
                    if full is not None:
                        break
        finally:
            counter.value += index - first
            if offset >= 0:
                tracker.routed = offset + 1
            if inline.record is not None:
                inline.kept()  # (an error the router does not dead-letter was raised)
        return index, full

    def _render(
        self,
        route: SourceRoute,
        record: InboundRecord,
        key: bytes | None,
        value: Any,
        nodes: dict[bytes | None, str] | None,
    ) -> str:
        """The node URI of a record of a topic with one route, remembered by key when
        the key is all its template reads."""
        topic = route.topic
        node = route.template.render(
            key, value, self._headers_of(record, topic), topic, record.partition() or 0
        )
        if len(node) > NODE_URI_LIMIT:
            raise _too_long(node)
        if nodes is not None:
            if len(nodes) >= NODE_CACHE_SIZE:
                nodes.clear()
            nodes[key] = node
        return node

    def _inline_for(self, tracker: PartitionTracker) -> InlineAck:
        tracker.inline = inline = InlineAck(tracker, self._dead_letters)
        return inline

    def _headers_of(self, record: InboundRecord, topic: str) -> Mapping[str, bytes]:
        """The record's headers, read only for templates that use them."""
        if not self._needs_headers[topic]:
            return _NO_HEADERS
        try:
            return dict(record.headers() or ())
        except Exception as exc:  # (confluent-kafka decodes names as UTF-8: see DeadLetters)
            raise RecordDecodeError(
                f"the record's headers cannot be read ({type(exc).__name__}: {exc})"
            ) from None

    def note_time(self) -> None:
        """``Plane.note_time``, for a batch routed one record at a time (:meth:`route`):
        :meth:`route_batch` calls it itself."""
        self._plane.note_time()

    def overfull(self) -> str | None:
        """A node whose mailbox a command that records caused (one agent's to another)
        filled since the last call: the source waits for room there too."""
        return self._plane.take_overfull()

    def report_held(self, everything: bool = False) -> None:
        """Log what the dead letters' rate limit held back, once it is time (see
        :meth:`DeadLetters.report_held`); once a batch, nothing per record."""
        self._dead_letters.report_held(everything)

    async def wait_for_room(self, node_uri: str) -> None:
        """Return once the agent's mailbox has drained to half its capacity."""
        await self._plane.wait_for_room(node_uri)


_SingleRoute = tuple[SourceRoute, Decoder, Counter, dict[bytes | None, str] | None, int]
"""A topic's only route, its decoder, its records counter, its node URIs by key, and
the longest value the batch path decodes with ``orjson.loads`` itself rather than through
the decoder, a call less a record (-1 for a format other than JSON): values longer may
be over the size limit or nested too deep, which the decoder checks."""

Stop = tuple[int, PartitionTracker | None, str | None]
"""Where :meth:`RecordRouter.route_batch` stopped: the index of the next record to route
(the batch's length when all are), and why, with the partition's tracker: a node URI
whose mailbox the record before the index filled (that partition should pause), or None
for a partition given back after a revoke whose next record may be one its agents
hold already (``tracker.replayed_to``: the caller routes that one)."""

_UNSET: Any = object()
_UNDECODABLE: Any = object()
_NO_HEADERS: Mapping[str, bytes] = {}


def compile_routes(sources: Sequence[Any]) -> list[SourceRoute]:
    """SourceRoutes from the app config's ``sources`` entries."""
    return [SourceRoute(s.topic, s.route, s.lane, s.format) for s in sources]


def _too_long(node_uri: str) -> RecordRoutingError:
    return RecordRoutingError(
        f"the node URI the route makes is {len(node_uri):,} characters, over the "
        f"{NODE_URI_LIMIT:,} an agent's name may have (it starts {node_uri[:60]!r})"
    )
