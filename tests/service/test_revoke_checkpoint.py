"""A revoke commits a checkpoint before the partitions go, so their next owner starts
where the committed state ends (see :mod:`swimstream.service.handover`).

With a commit interval far longer than the test, no periodic checkpoint runs: whatever
the group has committed when the revoke completes, the revoke's checkpoint committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from confluent_kafka import Message, Producer

from connectors.embedded import EmbeddedKafka
from connectors.factory import open_connectors
from connectors.kafka import KafkaSource
from swimstream.config import parse_config
from swimstream.service import Service
from tests.connectors.conftest import kept_polling
from tests.support.kafka import TANSU_SESSION, committed_offsets
from tests.support.towers import durable_towers_config
from tests.support.waiting import wait_until

PARTITIONS = 2
RECORDS = 600
READING = {"device": "d0", "tower": "t0", "temp": 20.0, "ts": RECORDS}


def towers(kafka: EmbeddedKafka, app: str, store: Path, guarantee: str) -> dict[str, Any]:
    config = durable_towers_config(kafka.bootstrap, app, str(store), PARTITIONS)
    config["processing"] = {"guarantee": guarantee, "commit_interval": 600}  # (none periodic)
    return config


@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
async def test_a_revoke_commits_a_checkpoint_of_everything_routed_before_the_partitions_go(
    kafka_broker: EmbeddedKafka, tmp_path: Path, guarantee: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly-once commits the offsets in the checkpoint's transaction; at-least-once
    right after it, through the source, before the revoke lets the partitions go. While
    it commits, HTTP commands to the shards' agents are told to retry (they would run
    after its cut) and reads are served."""
    app = f"revoke-checkpoint-{guarantee}"
    topic = f"{app}.readings"
    kafka_broker.create_topic(topic, partitions=PARTITIONS)
    config = towers(kafka_broker, app, tmp_path, guarantee)
    service = Service(parse_config(config, {}), open_connectors)
    await service.start()
    assert service.durability is not None and service.durability.checkpointer is not None
    checkpointer = service.durability.checkpointer
    joining: KafkaSource | None = None
    try:
        runner = service.runners[0]
        await wait_until(lambda: runner.ready, 60, "the service to hold its partitions")
        # (Keyed as the app shards its agents; each partition's end counted as written.)
        producer = Producer(
            {"bootstrap.servers": kafka_broker.bootstrap, "partitioner": "murmur2_random"}
        )
        ends: dict[int, int] = {}

        def written(error: object, message: Message) -> None:
            assert error is None, error
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            ends[partition] = max(ends.get(partition, 0), offset + 1)

        for n in range(RECORDS):
            reading = {"device": f"d{n % 50}", "tower": "t0", "temp": 20.0, "ts": n}
            producer.produce(topic, orjson.dumps(reading), f"d{n % 50}", on_delivery=written)
        assert producer.flush(10) == 0 and len(ends) == PARTITIONS

        def routed() -> int:
            return sum(runner.book.routed_positions().values())

        await wait_until(lambda: routed() == RECORDS, 30, "every record routed")
        assert checkpointer.stats.checkpoints == 0  # (the interval is ten minutes)
        assert service.web is not None
        lane = f"{service.web.url}/device/d0?lane="
        answers: list[int] = []
        commit_now = checkpointer.commit_now

        async def ask_then_commit() -> None:
            async with aiohttp.ClientSession() as client:
                async with client.post(lane + "reading", json=READING) as posted:
                    answers.append(posted.status)
                async with client.get(lane + "status") as read:
                    answers.append(read.status)
            await commit_now()

        monkeypatch.setattr(checkpointer, "commit_now", ask_then_commit)

        # Another member joins: the eager protocol revokes both partitions, then splits
        # them. The revoke waited for a checkpoint's commit of everything routed.
        joining = KafkaSource(
            kafka_broker.bootstrap, service.config.consumer_group, [topic], settings=TANSU_SESSION
        )
        await joining.open()
        async with kept_polling(joining):
            await wait_until(lambda: len(runner.connector.assignment()) == 1, 30, "the split")
            committed = committed_offsets(kafka_broker.bootstrap, app, topic, PARTITIONS)
            assert committed == ends
            assert checkpointer.stats.checkpoints == 1  # one per rebalance, not per callback
            assert answers == [503, 200]
    finally:
        if joining is not None:
            await joining.close()
        service.stop()
        await service.close()
    assert service.failure is None
