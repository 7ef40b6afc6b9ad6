"""An idle service sleeps: its loops wake a few times a second, not hundreds.

Counted, not timed: each loop's wake-ups over an idle spell, against what its shortest
sleep allows in the time that passed (a slow machine only makes fewer of them). With
the old polling the source loop woke every 50 ms, the delivery poll every 20 ms and a
checkpoint (a Kafka transaction) ran every 100 ms, whatever came in.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from connectors.embedded import EmbeddedKafka
from connectors.factory import open_connectors
from swimstream.config import parse_config
from swimstream.service import Service
from swimstream.store.checkpoint import IDLE_RECHECK, Checkpointer
from swimstream.streams.ingest import IDLE_SOURCE_WAIT
from tests.support.towers import durable_towers_config
from tests.support.waiting import wait_until

IDLE_SECONDS = 2.0


def towers(kafka: EmbeddedKafka, app: str, store: Path) -> dict[str, Any]:
    config = durable_towers_config(kafka.bootstrap, app, str(store), partitions=2)
    config["sinks"].append({"from": "/tower/:id#summary", "topic": f"{app}.summaries"})
    return config


async def test_an_idle_instance_neither_polls_nor_checkpoints_and_wakes_for_a_record(
    kafka_broker: EmbeddedKafka, tmp_path: Path
) -> None:
    app = "idle-towers"
    kafka_broker.create_topic(f"{app}.readings", partitions=2)
    service = Service(parse_config(towers(kafka_broker, app, tmp_path), {}), open_connectors)
    await service.start()
    try:
        runner = service.runners[0]
        assert service.durability is not None and service.durability.checkpointer is not None
        checkpointer = service.durability.checkpointer
        await wait_until(lambda: runner.ready and checkpointer.stats.checkpoints > 0, 60, "ready")
        await asyncio.sleep(IDLE_RECHECK)  # the waits back off

        started = time.monotonic()
        waits, sleeps = runner.waits, service.delivery_sleeps
        checkpoints, skipped = checkpointer.stats.checkpoints, checkpointer.stats.skipped
        await asyncio.sleep(IDLE_SECONDS)
        idle = time.monotonic() - started

        assert checkpointer.stats.checkpoints == checkpoints, "a checkpoint with nothing new"
        # Each loop went round at least once (a loop back to polling without its idle
        # sleep would count none), and no more often than its idle sleep allows.
        # Each skipped checkpoint sleeps until work comes or IDLE_RECHECK passes.
        assert 1 <= checkpointer.stats.skipped - skipped <= idle / IDLE_RECHECK + 2
        # The delivery poll sleeps until a record is pending (or a second passes).
        assert 1 <= service.delivery_sleeps - sleeps <= idle + 2
        # Fetching no record, the source loop waits up to IDLE_SOURCE_WAIT (and the
        # consumer ends a wait early only when something arrives).
        assert 1 <= runner.waits - waits <= idle / IDLE_SOURCE_WAIT + 3

        # A record after the quiet spell is processed and checkpointed (in a
        # transaction, so exactly-once readers see its effects) as usual.
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
        reading = {"device": "d1", "tower": "t1", "temp": 20.0, "ts": 1}
        producer.produce(f"{app}.readings", orjson.dumps(reading), b"d1")
        assert await asyncio.to_thread(producer.flush, 10) == 0
        assert service.plane is not None
        plane = service.plane
        await wait_until(lambda: plane.is_active("/device/d1"), 30, "the record processed")
        await wait_until(
            lambda: checkpointer.stats.checkpoints > checkpoints, 30, "a checkpoint of it"
        )

        # A change no source brought (a command, as an HTTP POST makes one) after
        # another quiet spell is checkpointed too: the idle checkpointer wakes for it.
        await asyncio.sleep(IDLE_RECHECK + 0.5)
        checkpoints = checkpointer.stats.checkpoints
        await plane.command("/device/d2", "reading", {**reading, "device": "d2"})
        await wait_until(
            lambda: checkpointer.stats.checkpoints > checkpoints, 30, "a checkpoint of a command"
        )
    finally:
        service.stop()
        await service.close()


async def test_commits_slower_than_the_interval_make_no_empty_checkpoints(
    kafka_broker: EmbeddedKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow broker's commit outlasts ``commit_interval``: the checkpointer waits for
    it and asks again, rather than cutting (and committing) nothing new each time."""
    commit = Checkpointer._commit

    async def slow_commit(self: Checkpointer, *args: Any) -> None:
        await asyncio.sleep(0.3)  # three intervals
        await commit(self, *args)

    monkeypatch.setattr(Checkpointer, "_commit", slow_commit)
    app = "slow-commits"
    kafka_broker.create_topic(f"{app}.readings", partitions=2)
    service = Service(parse_config(towers(kafka_broker, app, tmp_path), {}), open_connectors)
    await service.start()
    try:
        assert service.durability is not None and service.durability.checkpointer is not None
        checkpointer = service.durability.checkpointer
        runner = service.runners[0]
        await wait_until(lambda: runner.ready and checkpointer.stats.checkpoints > 0, 60, "ready")
        await asyncio.sleep(0.5)  # the first commit done
        checkpoints = checkpointer.stats.checkpoints
        await asyncio.sleep(IDLE_SECONDS)
        assert checkpointer.stats.checkpoints == checkpoints, "checkpoints with nothing new"
    finally:
        service.stop()
        await service.close()
