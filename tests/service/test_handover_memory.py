"""What a hand-over's restore leaves behind: no client of the broker, no freed memory kept.

Resident memory grew at every hand-over of the towers soak under churn and stayed there
(``bench/soak_churn.py``): each restore's changelog reader made consumers whose new
threads fetched the tail into a malloc arena of their own, and malloc kept it all once
freed. Each restore now gives the freed memory back (on glibc) and every client it made
is gone when it ends; memory itself is measured by the benchmarks
(``bench/restore_memory.py``), not here.
"""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from connectors.embedded import EmbeddedKafka, TopicFactory
from connectors.kafka.changelog import KafkaChangelogReader
from swimstream.config import parse_config
from swimstream.metrics import MetricsRegistry
from swimstream.service import memory
from swimstream.service.durability import Durability
from swimstream.service.handover import Handover
from swimstream.streams.connector import Rebalance, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter
from swimstream.testing import MemorySink, open_plane
from tests.config.documents import document
from tests.store.test_checkpoint_turns import Meter
from tests.streams.scripted import ScriptedSource
from tests.support.waiting import wait_until

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts threads by name in /proc"
)


def client_threads() -> Counter[str]:
    """This process's librdkafka threads (``rdk:main``, ``rdk:broker1``, …) by kind:
    every client has its own, gone once it is closed."""
    kinds: Counter[str] = Counter()
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:  # (a thread that ended meanwhile)
            continue
        if name.startswith("rdk:"):
            kinds[name.rstrip("0123456789")] += 1
    return kinds


@linux_only
async def test_each_restore_closes_its_clients_and_gives_freed_memory_back(
    tmp_path: Path, kafka_broker: EmbeddedKafka, make_topic: TopicFactory
) -> None:
    source_topic = make_topic(partitions=2)
    app = f"handovermemory{uuid.uuid4().hex[:8]}"
    config = parse_config(
        document(
            app=app,
            broker={"kind": "kafka", "bootstrap": kafka_broker.bootstrap},
            store={"path": str(tmp_path)},
        ),
        {},
    )
    kafka_broker.create_topic(config.changelog_topic, 2, compacted=True)
    readings = [TopicPartition(source_topic, 0), TopicPartition(source_topic, 1)]
    reader = KafkaChangelogReader(kafka_broker.bootstrap)
    durability = Durability(config, "one", reader, 2, lambda node: 0)
    failures: list[BaseException] = []
    released: list[int] = []

    async def release() -> None:
        released.append(len(released))

    async with open_plane({"/meter/:id": Meter}) as plane:
        await durability.open(readings)
        handover = Handover(durability, plane, [source_topic], failures.append, release)
        try:
            durability.attach(plane, arm_stored=False)
            registry = MetricsRegistry()
            dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]  # produces only
            source = ScriptedSource({}, waits=1)
            source.held = {readings[0]}
            runner = SourceRunner("test", source, RecordRouter(plane, [], dead, registry), registry)  # type: ignore[arg-type]
            handover.follow(runner)
            assert runner.on_moved is not None
            before = client_threads()
            for n in range(1, 6):  # shard 1 comes and goes: a restore each time it comes
                source.held = set(readings)
                runner.on_moved(Rebalance(assigned=(readings[1],), incremental=True))
                await wait_until(lambda: not handover.restoring(), 20, "the restore to end")
                await wait_until(lambda: len(released) == n, 5, f"release number {n}")  # noqa: B023
                source.held = {readings[0]}
                runner.on_moved(Rebalance(revoked=(readings[1],), incremental=True))
                await plane.settle()
            # Every consumer a restore made is closed: no kind has more threads than
            # before (a client an earlier test left to close by itself may end meanwhile).
            assert not client_threads() - before, (client_threads(), before)
        finally:
            await handover.close()
            durability.close()
    assert not failures
    assert len(released) == 5  # once per restore


@pytest.mark.skipif(not memory.can_release(), reason="not glibc: no malloc_trim")
async def test_freed_memory_is_given_back_where_malloc_can() -> None:
    freed = [bytearray(4096) for _ in range(10_000)]  # (some freed memory to give back)
    del freed
    assert await memory.release_freed_memory()
