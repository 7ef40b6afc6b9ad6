"""KafkaSink against the embedded broker: deliveries reported on the loop thread, a full
queue absorbed, failures translated, and a transaction's records and offsets committed."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from connectors.embedded import EmbeddedKafka, TopicFactory, free_ports
from connectors.kafka import KafkaBrokerError, KafkaSink
from connectors.reachable import split_address
from swimstream.errors import BrokerError, ConfigError
from swimstream.store.deferral import DeferringSink
from swimstream.streams.connector import DeliveryCallback, SinkConnector
from tests.connectors.conftest import SinkFactory, SourceFactory, new_group, pump
from tests.support.kafka import committed_offsets, produce_json, read_topic


async def test_delivery_callbacks_run_on_the_loop_thread_and_pending_returns_to_zero(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    topic = make_topic(partitions=4)
    sink = await open_sink()
    outcomes: list[tuple[BaseException | None, int]] = []

    def delivered(error: BaseException | None) -> None:
        outcomes.append((error, threading.get_ident()))

    for n in range(1000):
        sink.produce(topic, b"k%d" % (n % 10), b"v%d" % n, [("n", b"%d" % n)], delivered)
    assert sink.pending == 1000

    assert await sink.flush(10)
    assert sink.pending == 0
    assert len(outcomes) == 1000
    assert {error for error, _ in outcomes} == {None}
    assert {thread for _, thread in outcomes} == {threading.get_ident()}
    records = read_topic(kafka_broker.bootstrap, topic)
    assert sorted(r.value() or b"" for r in records) == sorted(b"v%d" % n for n in range(1000))
    assert {r.headers() == [("n", (r.value() or b"")[1:])] for r in records} == {True}


async def test_producing_faster_than_the_queue_holds_does_not_raise(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    topic = make_topic(partitions=2)
    sink = await open_sink(settings={"queue.buffering.max.messages": 50})
    delivered: list[BaseException | None] = []
    for n in range(3000):
        sink.produce(topic, None, b"%d" % n, on_delivery=delivered.append)
        assert sink.pending <= 50 + 1
    assert await sink.flush(10)
    assert delivered == [None] * 3000
    assert len(read_topic(kafka_broker.bootstrap, topic)) == 3000


async def test_many_records_sharing_headers_land_on_their_partitions_through_a_full_queue(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    topic = make_topic(partitions=4)
    sink = await open_sink(settings={"queue.buffering.max.messages": 100})
    headers = [("checkpoint", b"7")]
    records = [(b"/a/%d#n" % n, None if n % 10 == 0 else b"v%d" % n, n % 4) for n in range(2000)]
    sink.produce_many(topic, iter(records), headers)
    assert await sink.flush(10)
    assert sink.pending == 0
    found = read_topic(kafka_broker.bootstrap, topic)
    assert sorted((r.key(), r.value(), r.partition()) for r in found) == sorted(records)
    assert {tuple(r.headers() or ()) for r in found} == {(("checkpoint", b"7"),)}


async def test_failures_are_broker_errors_naming_the_topic(
    make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    topic = make_topic(partitions=1)
    sink = await open_sink(settings={"message.timeout.ms": 1000})
    with pytest.raises(KafkaBrokerError, match=f"topic '{topic}'.*Unknown partition"):
        sink.produce(topic, None, b"nowhere", partition=7)

    outcomes: list[BaseException | None] = []
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    sink.produce(missing, None, b"lost", on_delivery=outcomes.append)
    assert await sink.flush(5)
    [error] = outcomes
    assert isinstance(error, KafkaBrokerError)
    assert missing in str(error)
    assert sink.pending == 0
    assert sink.undelivered == 1  # what an at-least-once checkpoint looks at

    # Records without a callback of their own (a checkpoint's) are counted all the same.
    sink.produce_many(missing, [(None, b"a", 0), (None, b"b", 0)], [])
    sink.produce(topic, None, b"fine")
    assert await sink.flush(5)
    assert sink.undelivered == 3


async def test_a_committed_transaction_shows_its_records_and_offsets(
    kafka_broker: EmbeddedKafka,
    make_topic: TopicFactory,
    open_source: SourceFactory,
    open_sink: SinkFactory,
) -> None:
    source_topic, sink_topic = make_topic(partitions=2), make_topic(partitions=2)
    produce_json(kafka_broker.bootstrap, source_topic, ((f"k{n}", n) for n in range(30)))
    group = new_group()
    source = await open_source([source_topic], group)
    sink = await open_sink(transactional_id=f"txn-{group}")
    records = await pump(source, lambda got: len(got) >= 30)

    outcomes: list[tuple[BaseException | None, int]] = []

    def delivered(error: BaseException | None) -> None:
        outcomes.append((error, threading.get_ident()))

    sink.begin_transaction()
    for record in records:
        sink.produce(sink_topic, record.key(), b"seen " + (record.value() or b""), None, delivered)
    unreported = [(b"u%d" % n, b"unreported %d" % n, n % 2) for n in range(10)]
    sink.produce_many(sink_topic, unreported, [("h", b"1")], reported=False)
    assert sink.pending >= 30  # (the unreported ones count too while queued: the sources
    # pause for them; the commit vouches for them, and waits for the 30 reports only)
    positions = source.positions()
    await sink.send_offsets_to_transaction(positions, source.consumer_group_metadata())
    await sink.commit_transaction()

    assert sink.pending == 0
    assert outcomes == [(None, threading.get_ident())] * 30
    seen = read_topic(kafka_broker.bootstrap, sink_topic, isolation="read_committed")
    expected = [b"seen %d" % n for n in range(30)] + [value for _, value, _ in unreported]
    assert sorted(r.value() or b"" for r in seen) == sorted(expected)
    committed = committed_offsets(kafka_broker.bootstrap, group, source_topic, 2)
    assert committed == {tp.partition: offset for tp, offset in positions.items()}
    assert sum(committed.values()) == 30


async def test_records_held_during_a_commit_enter_the_next_transaction_vouched_for(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    topic = make_topic(partitions=2)
    inner = await open_sink(transactional_id=f"txn-{new_group()}")
    sink = DeferringSink(inner)
    delivered: list[BaseException | None] = []
    inner.begin_transaction()
    sink.produce(topic, b"a", b"first", [("h", b"1")], delivered.append)
    assert delivered == [None]  # the commit vouches for it: no report to wait for
    sink.hold()  # a checkpoint's commit is under way
    sink.produce(topic, b"b", b"held", None, delivered.append, partition=1)
    await inner.commit_transaction()
    inner.begin_transaction()
    assert sink.release() == 1
    await inner.commit_transaction()
    assert delivered == [None, None]
    assert sink.pending == 0
    found = read_topic(kafka_broker.bootstrap, topic, isolation="read_committed")
    assert sorted((r.key(), r.value()) for r in found) == [(b"a", b"first"), (b"b", b"held")]
    assert [r.partition() for r in found if r.key() == b"b"] == [1]


async def test_closing_with_the_broker_frozen_reports_the_unacknowledged_records_failed(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    topic = make_topic(partitions=1)
    sink = await open_sink()
    outcomes: list[BaseException | None] = []
    kafka_broker.pause()
    try:
        for n in range(5):
            sink.produce(topic, None, b"%d" % n, on_delivery=outcomes.append)
        await sink.close(timeout=0.5)
    finally:
        kafka_broker.resume()
    assert sink.pending == 0
    assert len(outcomes) == 5
    assert all(isinstance(error, KafkaBrokerError) for error in outcomes)


async def test_a_flush_to_a_mark_waits_for_the_records_before_it_and_no_others(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    """An at-least-once checkpoint waits for its cut's records: under a steady stream of
    insights, waiting until none at all is pending took seconds, or never ended."""
    topic = make_topic(partitions=1)
    sink = await open_sink()
    delivered: list[str] = []

    def noted(what: str) -> DeliveryCallback:
        return lambda _error: delivered.append(what)

    for n in range(100):
        sink.produce(topic, None, b"%d" % n, on_delivery=noted(f"{n}"))
    cut = sink.mark()
    assert await sink.flush_to(cut, 10)
    assert len(delivered) == 100  # every record before the mark, reported
    kafka_broker.pause()
    try:
        sink.produce(topic, None, b"after", on_delivery=noted("after"))
        started = time.monotonic()
        assert await sink.flush_to(cut, 5)  # the record after the mark holds nothing up
        assert time.monotonic() - started < 1.0
        assert not await sink.flush(0.5)  # (it is still pending)
    finally:
        kafka_broker.resume()
    assert await sink.flush(10) and delivered[-1] == "after"


async def test_transactions_need_a_transactional_id(open_sink: SinkFactory) -> None:
    sink = await open_sink()
    with pytest.raises(BrokerError, match="without a transactional_id"):
        sink.begin_transaction()


def test_it_is_a_sink_connector() -> None:
    sink: SinkConnector = KafkaSink("127.0.0.1:9")  # mypy checks the protocol
    assert sink.pending == 0


def test_settings_swimstream_owns_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"enable\.idempotence"):
        KafkaSink("127.0.0.1:9", settings={"enable.idempotence": False})


async def test_a_broker_nobody_listens_for_is_reported_at_once_as_unreachable() -> None:
    """librdkafka would retry for its whole 10 s metadata timeout and then say only that
    it timed out; a plain connect is refused at once and names the address, so a
    service started before its broker says so within a second (and waits for it)."""
    port = free_ports(1)[0]
    sink = KafkaSink(f"127.0.0.1:{port},localhost:{port}")
    started = time.monotonic()
    with pytest.raises(BrokerError, match=rf"cannot reach the Kafka broker at 127\.0\.0\.1:{port}"):
        await sink.open()
    assert time.monotonic() - started < 5, "the client's own 10 s timeout was waited out"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("kafka:19092", ("kafka", 19092)),
        (" broker-1 ", ("broker-1", 9092)),
        ("SASL_SSL://b.example.com:9093", ("b.example.com", 9093)),
        ("[::1]:9094", ("::1", 9094)),
        ("[::1]", ("::1", 9092)),
    ],
)
def test_bootstrap_addresses_are_read_as_librdkafka_reads_them(
    address: str, expected: tuple[str, int]
) -> None:
    assert split_address(address, 9092) == expected
