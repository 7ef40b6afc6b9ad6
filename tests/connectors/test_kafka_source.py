"""KafkaSource against the embedded broker: records, flow control, commits, rebalances
and liveness, each checked through the topic or the group itself."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Mapping

import orjson
import pytest

from connectors.embedded import EmbeddedKafka, TopicFactory
from connectors.kafka import KafkaSource
from connectors.kafka.loop import LoopBridge
from connectors.kafka.source import FETCH_RECORDS
from swimstream.errors import BrokerError, ConfigError
from swimstream.streams.connector import (
    InboundRecord,
    Rebalance,
    SourceConnector,
    TopicPartition,
)
from tests.connectors.conftest import SourceFactory, kept_polling, new_group, pump
from tests.support.kafka import committed_offsets, produce_json


async def closing_time(source: KafkaSource, close_timeout: float) -> float:
    """Seconds ``source.close()`` takes, given up on after ``close_timeout``."""
    source.close_timeout = close_timeout
    started = time.monotonic()
    await source.close()
    return time.monotonic() - started


def partition_of(record: InboundRecord) -> int:
    partition = record.partition()
    assert partition is not None
    return partition


def offset_of(record: InboundRecord) -> int:
    offset = record.offset()
    assert offset is not None
    return offset


def fill(bootstrap: str, topic: str, per_partition: int, partitions: int = 4) -> None:
    for partition in range(partitions):
        produce_json(
            bootstrap,
            topic,
            ((f"k{partition}-{n}", {"n": n}) for n in range(per_partition)),
            partition=partition,
        )


async def test_consumes_every_partition_with_keys_and_headers(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_source: SourceFactory
) -> None:
    topic = make_topic(partitions=4)
    produce_json(
        kafka_broker.bootstrap,
        topic,
        ((f"device-{n % 25}", {"n": n}) for n in range(400)),
        headers=[("origin", b"test")],
    )
    source = await open_source([topic])
    assert source.partition_counts == {topic: 4}

    records = await pump(source, lambda got: len(got) >= 400)

    assert len(records) == 400
    assert sorted(orjson.loads(r.value() or b"")["n"] for r in records) == list(range(400))
    assert {r.headers() == [("origin", b"test")] for r in records} == {True}
    partitions_of_key: dict[bytes | None, set[int]] = {}
    for record in records:
        partitions_of_key.setdefault(record.key(), set()).add(partition_of(record))
    assert len(partitions_of_key) == 25
    assert all(len(partitions) == 1 for partitions in partitions_of_key.values())
    assert source.assignment() == {TopicPartition(topic, p) for p in range(4)}
    # Caught up, judged from fetch watermarks and positions as the service judges it.
    high = source.high_watermarks()
    assert sum(high.values()) == 400
    assert source.positions() == high
    assert source.connected


async def test_pause_stops_a_partition_and_resume_restarts_it(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_source: SourceFactory
) -> None:
    topic = make_topic(partitions=2)
    fill(kafka_broker.bootstrap, topic, per_partition=10, partitions=2)
    source = await open_source([topic])
    await pump(source, lambda got: len(got) >= 20)

    paused = TopicPartition(topic, 0)
    source.pause([paused])
    fill(kafka_broker.bootstrap, topic, per_partition=10, partitions=2)
    while_paused = await pump(source, lambda got: len(got) >= 10)
    await asyncio.sleep(0.3)
    while_paused.extend(await pump(source, lambda _: True, timeout=1))
    assert {partition_of(r) for r in while_paused} == {1}
    for _ in range(10):  # the wait in between must not deliver p0 either
        while_paused.extend(source.consume(100))
        await source.wait_for_records(0.05)
    assert {partition_of(r) for r in while_paused} == {1}

    source.resume([paused])
    resumed = await pump(source, lambda got: len(got) >= 10)
    assert {partition_of(r) for r in resumed} == {0}
    assert sorted(offset_of(r) for r in resumed) == list(range(10, 20))


@pytest.mark.parametrize(
    "buffered", [0, FETCH_RECORDS], ids=["nothing-buffered", "a-fetch-buffered"]
)
async def test_keep_membership_keeps_a_paused_member_in_its_group(
    kafka_broker: EmbeddedKafka,
    make_topic: TopicFactory,
    open_source: SourceFactory,
    buffered: int,
) -> None:
    """A member that consumes nothing for ``max.poll.interval.ms`` (7 s here) leaves its
    group, and takes its partitions with it; calling ``keep_membership`` while every
    partition is paused keeps it in, and delivers nothing of the paused partitions.
    Also with a whole fetch buffered and not yet taken (under load, what the runner
    could not route before it paused), where the keep-alive used to only sleep."""
    topic = make_topic(partitions=2)
    fill(kafka_broker.bootstrap, topic, per_partition=10, partitions=2)
    source = await open_source([topic], settings={"max.poll.interval.ms": 7000})
    changes: list[Rebalance] = []

    def listener(change: Rebalance) -> Mapping[TopicPartition, int]:
        changes.append(change)
        return {}

    source.set_rebalance_listener(listener)
    await pump(source, lambda got: len(got) >= 20)
    held = sorted(source.assignment())
    assert len(held) == 2
    if buffered:
        fill(kafka_broker.bootstrap, topic, per_partition=buffered, partitions=2)
        await asyncio.sleep(1.0)  # librdkafka prefetches them all
        await source.wait_for_records(5.0)  # one fetch, of up to the fetch size
        assert source.buffered >= buffered // 2
    before = source.buffered
    source.pause(held)
    fill(kafka_broker.bootstrap, topic, per_partition=10, partitions=2)
    changes.clear()

    kept_until = time.monotonic() + 12.0  # well past max.poll.interval.ms
    while time.monotonic() < kept_until:
        await source.keep_membership(1.0)

    assert changes == []  # neither revoked nor lost
    assert source.assignment() == set(held)
    # What was buffered before the pause is still there; what arrived meanwhile waits
    # for the resume.
    taken = source.consume(buffered + 100)
    assert len(taken) == before
    source.resume(held)
    resumed = await pump(source, lambda got: len(got) >= 2 * (buffered + 10) - before)
    offsets = sorted(offset_of(r) for r in [*taken, *resumed])
    assert offsets == sorted(list(range(10, buffered + 20)) * 2)


async def test_a_new_member_starts_after_the_committed_offsets(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_source: SourceFactory
) -> None:
    topic = make_topic(partitions=4)
    fill(kafka_broker.bootstrap, topic, per_partition=20)
    group = new_group()
    first = await open_source([topic], group)
    await pump(first, lambda got: len(got) >= 80)
    first.commit({TopicPartition(topic, p): 5 + p for p in range(4)})
    await first.close()
    assert committed_offsets(kafka_broker.bootstrap, group, topic, 4) == {
        p: 5 + p for p in range(4)
    }

    second = await open_source([topic], group)
    records = await pump(second, lambda got: len(got) >= 80 - (5 + 6 + 7 + 8))
    first_offsets: dict[int, int] = {}
    for record in records:
        first_offsets.setdefault(partition_of(record), offset_of(record))
    assert first_offsets == {p: 5 + p for p in range(4)}


async def test_a_joining_member_revokes_on_the_loop_thread_and_commits_the_listeners_offsets(
    kafka_broker: EmbeddedKafka,
    make_topic: TopicFactory,
    open_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="swimstream.kafka.source")
    topic = make_topic(partitions=4)
    fill(kafka_broker.bootstrap, topic, per_partition=10)
    group = new_group()
    loop_thread = threading.get_ident()
    seen: list[tuple[Rebalance, int, set[TopicPartition]]] = []
    first = await open_source([topic], group)

    def listener(change: Rebalance) -> Mapping[TopicPartition, int]:
        seen.append((change, threading.get_ident(), first.assignment()))
        return {tp: 7 for tp in change.revoked}

    first.set_rebalance_listener(listener)
    await pump(first, lambda got: len(got) >= 40)
    assert [change.assigned for change, _, _ in seen] == [
        tuple(TopicPartition(topic, p) for p in range(4))
    ]

    second = await open_source([topic], group)
    async with kept_polling(first):
        taken = await pump(
            second, lambda got: len(second.assignment()) == 2 and len(got) >= 6, timeout=20
        )

    revoked = [change for change, _, _ in seen if change.revoked]
    assert revoked and not revoked[0].lost
    assert set(revoked[0].revoked) == {TopicPartition(topic, p) for p in range(4)}
    assert {thread for _, thread, _ in seen} == {loop_thread}
    assert seen[1][2] == {TopicPartition(topic, p) for p in range(4)}  # held while asked
    assert len(first.assignment()) == 2
    assert first.assignment().isdisjoint(second.assignment())
    # The listener's offsets were committed before the partitions moved, so the new
    # owner started from them.
    assert sorted(offset_of(r) for r in taken) == [7, 7, 8, 8, 9, 9]
    assert committed_offsets(kafka_broker.bootstrap, group, topic, 4) == {p: 7 for p in range(4)}
    # Each rebalance is one info line, the source's (naming its group): the runner's
    # are debug (integration tests wait for "revoked" in an instance's log).
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(f"assigned {topic}[0, 1, 2, 3]" in line for line in lines), lines
    assert any(f"revoked {topic}[0, 1, 2, 3]" in line for line in lines), lines


async def test_a_revoke_waits_for_before_revoke_while_the_partitions_are_still_held(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_source: SourceFactory
) -> None:
    """``before_revoke`` runs on the loop while the worker waits in the revoke: it may
    await (a checkpoint settles and commits there), the partitions are still this
    member's meanwhile, and what it commits is where their next owner starts."""
    topic = make_topic(partitions=4)
    fill(kafka_broker.bootstrap, topic, per_partition=10)
    group = new_group()
    loop_thread = threading.get_ident()
    everything = {TopicPartition(topic, p) for p in range(4)}
    events: list[str] = []
    first = await open_source([topic], group)

    def listener(change: Rebalance) -> Mapping[TopicPartition, int]:
        if change.revoked:
            events.append("listener told of the revoke")
        return {}  # nothing: the offsets committed are before_revoke's

    async def before_revoke(partitions: tuple[TopicPartition, ...]) -> None:
        events.append("before_revoke began")
        assert threading.get_ident() == loop_thread
        assert set(partitions) == everything == first.assignment()
        await asyncio.sleep(0.5)
        first.commit({tp: 6 for tp in partitions})
        events.append("before_revoke ended")

    first.set_rebalance_listener(listener, before_revoke)
    await pump(first, lambda got: len(got) >= 40)
    second = await open_source([topic], group)
    async with kept_polling(first):
        taken = await pump(second, lambda got: len(got) >= 8, timeout=20)

    assert events[:3] == [
        "before_revoke began",
        "before_revoke ended",
        "listener told of the revoke",
    ]
    assert {offset_of(r) for r in taken} == {6, 7, 8, 9}
    assert committed_offsets(kafka_broker.bootstrap, group, topic, 4) == {p: 6 for p in range(4)}


async def test_a_revoke_waits_for_before_revoke_no_longer_than_the_revoke_timeout(
    kafka_broker: EmbeddedKafka,
    make_topic: TopicFactory,
    open_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A ``before_revoke`` that never ends (a commit to a broker gone silent) is
    cancelled after ``revoke_timeout``, and the partitions move all the same."""
    topic = make_topic(partitions=2)
    group = new_group()
    first = await open_source([topic], group, revoke_timeout=1.0)
    waited: list[float] = []

    async def never_done(_partitions: tuple[TopicPartition, ...]) -> None:
        began = time.monotonic()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            waited.append(time.monotonic() - began)
            raise

    first.set_rebalance_listener(lambda _: {}, never_done)
    await pump(first, lambda _: len(first.assignment()) == 2)
    second = await open_source([topic], group)
    async with kept_polling(first):
        await pump(second, lambda _: bool(second.assignment()), timeout=30)
    assert len(first.assignment()) == 1
    # The hook's own wait, not the whole rebalance (about 5 s here, mostly the broker's
    # fixed join delay, and longer on a loaded machine): 1 s, with slack for the load;
    # waiting out the default 10 s instead of the source's revoke_timeout fails it.
    assert len(waited) == 1 and waited[0] < 1.0 + 5.0, f"the hook waited {waited} s"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("took over 1 s" in line for line in warned), warned


async def test_a_before_revoke_that_fails_fails_the_source_and_the_partitions_move(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_source: SourceFactory
) -> None:
    """A failed ``before_revoke`` (a checkpoint that could not commit) is raised by the
    source's next call, as a listener's failure is, for the service to stop on; the
    revoke itself goes on."""
    topic = make_topic(partitions=2)
    group = new_group()
    first = await open_source([topic], group)

    async def failing(_partitions: tuple[TopicPartition, ...]) -> None:
        raise RuntimeError("the checkpoint failed")

    first.set_rebalance_listener(lambda _: {}, failing)
    await pump(first, lambda _: len(first.assignment()) == 2)
    second = await open_source([topic], group)
    raised: list[BaseException] = []
    stop = asyncio.Event()

    async def poll_first() -> None:
        while not stop.is_set():
            try:
                first.consume(100)
                await first.wait_for_records(0.05)
            except RuntimeError as exc:
                raised.append(exc)

    polling = asyncio.create_task(poll_first())
    try:
        await pump(second, lambda _: bool(second.assignment()), timeout=20)
    finally:
        stop.set()
        await polling
    assert [str(exc) for exc in raised] == ["the checkpoint failed"]
    assert len(first.assignment()) == 1


async def test_a_revoke_while_the_broker_does_not_answer_does_not_wait_for_before_revoke(
    kafka_broker: EmbeddedKafka,
    make_topic: TopicFactory,
    open_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Closing revokes; with the broker frozen, what ``before_revoke`` would commit
    could only wait for it, so it is not called (a warning says so) and the close is
    bounded by ``close_timeout`` alone."""
    topic = make_topic(partitions=1)
    source = await open_source([topic])
    called: list[tuple[TopicPartition, ...]] = []

    async def before_revoke(partitions: tuple[TopicPartition, ...]) -> None:
        called.append(partitions)

    source.set_rebalance_listener(lambda _: {}, before_revoke)
    await pump(source, lambda _: bool(source.assignment()))
    kafka_broker.pause()
    try:
        await pump(source, lambda _: not source.connected, timeout=10)
        took = await closing_time(source, 3.0)
    finally:
        kafka_broker.resume()
    assert called == []
    assert took < 3.0 + 5.0, f"closing took {took:.1f} s"  # (a wait for the broker: 30 s on)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("does not answer: revoking" in line for line in warned), warned


async def test_a_close_while_a_frozen_broker_holds_up_a_revoke_gives_up_in_time(
    kafka_broker: EmbeddedKafka,
    make_topic: TopicFactory,
    open_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker froze while a revoke's ``before_revoke`` was committing (as the
    service's checkpoint does): the worker waits for it inside the revoke, and ``close``
    gives up after ``close_timeout`` instead of waiting as long as the revoke would.

    The hook holds the revoke until the test lets it go, as a commit to the frozen
    broker would: leaving the waiting to librdkafka's own commit of the listener's
    offsets held the worker only most times (under load the commit was sometimes
    reported done at once, frozen broker or not, and the close took its other way out,
    with another message)."""
    topic = make_topic(partitions=2)
    group = new_group()
    first = await open_source([topic], group, revoke_timeout=60.0)
    frozen, committed = asyncio.Event(), asyncio.Event()

    async def commit_to_a_frozen_broker(_partitions: tuple[TopicPartition, ...]) -> None:
        kafka_broker.pause()
        frozen.set()
        await committed.wait()  # until the broker answers again

    first.set_rebalance_listener(
        lambda change: {tp: 0 for tp in change.revoked}, commit_to_a_frozen_broker
    )
    await pump(first, lambda _: len(first.assignment()) == 2)
    second = await open_source([topic], group)
    try:
        async with kept_polling(first):
            await pump(second, lambda _: frozen.is_set(), timeout=20)
        took = await closing_time(first, 2.0)
    finally:
        kafka_broker.resume()
        committed.set()
    # Slack for a loaded machine; without the bound the close waits for the revoke
    # (60 s here).
    assert took < 2.0 + 10.0, f"closing took {took:.1f} s"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("still busy with the broker within 2 s" in line for line in errors), errors


@pytest.mark.parametrize("waits", [True, False], ids=["with-waits", "consume-only"])
async def test_a_listener_that_pauses_new_partitions_gets_no_later_record_of_them(
    kafka_broker: EmbeddedKafka,
    make_topic: TopicFactory,
    open_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
    waits: bool,
) -> None:
    """The assignment is served in the worker thread, whether the service waits for
    records or only consumes (whose fetches the worker makes too: a callback served on
    the loop thread could await nothing), and reaches the listener on the loop thread;
    either way a pause made inside the listener holds: no record produced after it is
    delivered until the resume, and then every record comes, once.

    What librdkafka fetched between the assignment and the pause may still come out of
    the first consume (a fresh clone's run got a partition's five records so, once in
    many runs; ``KafkaSource.pause`` says as much): the source runner holds such records
    of a restoring partition until its restore (``tests/streams/test_restoring_hold.py``).
    """
    caplog.set_level(logging.DEBUG, logger="swimstream.kafka.source")
    topic = make_topic(partitions=2)
    fill(kafka_broker.bootstrap, topic, per_partition=5, partitions=2)
    source = await open_source([topic])
    threads: set[int] = set()

    def restore_first(change: Rebalance) -> Mapping[TopicPartition, int]:
        threads.add(threading.get_ident())
        source.pause(change.assigned)
        return {}

    source.set_rebalance_listener(restore_first)
    delivered: list[InboundRecord] = []

    async def poll_once() -> None:
        delivered.extend(source.consume(100))
        if waits:
            await source.wait_for_records(0.05)
        else:
            await asyncio.sleep(0.01)

    deadline = time.monotonic() + 15
    while not source.assignment():
        assert time.monotonic() < deadline, "no assignment"
        await poll_once()
    settled = time.monotonic() + 1.0
    while time.monotonic() < settled:
        await poll_once()
    early = len(delivered)  # (fetched before the pause held: see the docstring)
    fill(kafka_broker.bootstrap, topic, per_partition=5, partitions=2)  # offsets 5 to 9
    settled = time.monotonic() + 1.0
    while time.monotonic() < settled:
        await poll_once()
    assert [(r.partition(), r.offset()) for r in delivered[early:]] == []
    assert all((r.offset() or 0) < 5 for r in delivered)
    assert threads == {threading.get_ident()}
    served = [r.getMessage() for r in caplog.records if "assignment served" in r.getMessage()]
    assert served and all(line.endswith("in a worker thread") for line in served), served

    source.resume(sorted(source.assignment()))
    delivered += await pump(source, lambda got: early + len(got) >= 20)
    seen = sorted((r.partition(), r.offset()) for r in delivered)
    assert seen == [(p, n) for p in range(2) for n in range(10)]


async def test_a_partition_paused_when_revoked_is_fetched_when_assigned_again(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_source: SourceFactory
) -> None:
    """The service forgets the pauses of partitions it loses (its backpressure ends
    with them): a partition gained is fetched unless the listener pauses it. librdkafka
    kept the pause through the revoke, and the partition never delivered again."""
    topic = make_topic(partitions=2)
    fill(kafka_broker.bootstrap, topic, per_partition=5, partitions=2)
    group = new_group()
    source = await open_source([topic], group)
    await pump(source, lambda got: len(got) >= 10)
    source.pause(sorted(source.assignment()))
    whole_again = asyncio.Event()

    def listener(change: Rebalance) -> Mapping[TopicPartition, int]:
        if len(change.assigned) == 2:
            whole_again.set()
        return {}

    source.set_rebalance_listener(listener)
    async with kept_polling(source):  # another member comes and goes: two rebalances
        other = await open_source([topic], group)
        await pump(other, lambda _: bool(other.assignment()))
        await other.close()
        await asyncio.wait_for(whole_again.wait(), 20)
    fill(kafka_broker.bootstrap, topic, per_partition=5, partitions=2)
    again = await pump(source, lambda got: len(got) >= 10, timeout=10)
    assert {partition_of(r) for r in again} == {0, 1}


async def test_connected_follows_a_frozen_broker(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_source: SourceFactory
) -> None:
    topic = make_topic(partitions=1)
    source = await open_source([topic])
    await pump(source, lambda _: bool(source.assignment()))
    assert source.connected

    kafka_broker.pause()
    try:
        started = time.monotonic()
        await pump(source, lambda _: not source.connected, timeout=10)
        assert time.monotonic() - started < 8
    finally:
        kafka_broker.resume()
    await pump(source, lambda _: source.connected, timeout=10)


async def test_a_missing_source_topic_is_named(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory
) -> None:
    present = make_topic(partitions=1)
    source = KafkaSource(kafka_broker.bootstrap, new_group(), [present, "no-such-topic"])
    with pytest.raises(BrokerError, match="'no-such-topic' do not exist") as raised:
        await source.open()
    assert present not in str(raised.value)
    assert kafka_broker.bootstrap in str(raised.value)


def test_it_is_a_source_connector() -> None:
    source: SourceConnector = KafkaSource("127.0.0.1:9", "group", ["topic"])  # mypy checks
    assert not source.connected and source.assignment() == set()


def test_settings_swimstream_owns_are_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        KafkaSource("127.0.0.1:9", "g", ["t"], settings={"group.id": "x", "linger.ms": 1})
    assert [path for path, _ in raised.value.problems] == ["settings['group.id']"]


@pytest.mark.skipif(not os.environ.get("SWIMSTREAM_BENCH"), reason="set SWIMSTREAM_BENCH=1")
async def test_consume_rate(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_source: SourceFactory
) -> None:
    """How many records/s ``consume`` hands to Python (the figure in the source's
    docstring): 500k JSON records over 4 partitions, counted, from assignment on."""
    total = 500_000
    topic = make_topic(partitions=4)
    produce_json(
        kafka_broker.bootstrap,
        topic,
        ((f"device-{n % 1000}", {"device": n % 1000, "ts": n, "temp": 20.5}) for n in range(total)),
    )
    source = await open_source([topic])
    await pump(source, lambda _: bool(source.assignment()))
    count = 0
    started = time.perf_counter()
    while count < total:
        records = source.consume(500)
        if records:
            for _record in records:
                count += 1
        else:
            await source.wait_for_records(0.05)
    elapsed = time.perf_counter() - started
    print(f"\n{total} records in {elapsed:.2f} s: {total / elapsed:,.0f} records/s")


async def test_the_loop_bridge_runs_calls_from_other_threads_on_the_loop() -> None:
    bridge = LoopBridge()
    answer = await asyncio.to_thread(bridge.call, threading.get_ident)
    assert answer == threading.get_ident()
    with pytest.raises(ZeroDivisionError):
        await asyncio.to_thread(bridge.call, lambda: 1 // 0)
