"""A transactional sink fenced by a newer producer of its id says so.

Two live instances given one ``mesh.instance_id`` share a transactional id: the newer
one's producer fences the older one's, whose current transaction fails at the broker.
librdkafka then refuses every later call with ``_STATE`` ("Erroneous state"), which is
all the older instance said as it stopped: why its transaction failed was only in one
of the client's log lines.
"""

from __future__ import annotations

import pytest

from connectors.embedded import EmbeddedKafka, TopicFactory
from connectors.kafka import KafkaBrokerError, KafkaSink
from tests.connectors.conftest import SinkFactory, new_group
from tests.support.waiting import wait_until


def refused(sink: KafkaSink, topic: str) -> KafkaBrokerError | None:
    """What producing one more record raises (None: it was taken)."""
    sink.poll()
    try:
        sink.produce_many(topic, [(b"k", b"later", 0)], [], reported=False)
    except KafkaBrokerError as exc:
        return exc
    return None


async def test_a_fenced_producer_s_refusals_say_another_one_took_its_id_over(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    topic = make_topic(partitions=1)
    transactional_id = f"txn-{new_group()}"
    older = await open_sink(transactional_id=transactional_id)
    older.begin_transaction()
    older.produce_many(topic, [(b"k", b"first", 0)], [], reported=False)
    assert await older.flush(10)
    newer = await open_sink(transactional_id=transactional_id)  # fences the older one
    newer.begin_transaction()
    newer.produce(topic, b"k", b"newer")
    await newer.commit_transaction()

    errors: list[KafkaBrokerError] = []

    def failed() -> bool:
        error = refused(older, topic)
        if error is not None:
            errors.append(error)
        return bool(errors)

    await wait_until(failed, 30, "the fenced producer to refuse a record")
    said = str(errors[0])
    assert "PRODUCER_FENCED" in said, said
    assert "mesh.instance_id" in said, said
    with pytest.raises(KafkaBrokerError, match="PRODUCER_FENCED") as committing:
        await older.commit_transaction(10)
    assert "mesh.instance_id" in str(committing.value)


async def test_a_producer_fenced_for_good_is_polled_and_flushed_without_raising(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    """Fenced as its transaction begins (nothing of it at the broker yet), the producer
    fails for good (``_FENCED``, fatal), and librdkafka raises that once from the next
    poll: the service's last flush at its stop crashed with a traceback on it."""
    topic = make_topic(partitions=1)
    transactional_id = f"txn-{new_group()}"
    older = await open_sink(transactional_id=transactional_id)
    older.begin_transaction()
    await open_sink(transactional_id=transactional_id)  # fences the older one
    older.produce(topic, b"k", b"fenced")

    errors: list[KafkaBrokerError] = []

    def failed() -> bool:
        error = refused(older, topic)  # (polls first)
        if error is not None:
            errors.append(error)
        return bool(errors)

    await wait_until(failed, 30, "the fenced producer to refuse a record")
    assert "mesh.instance_id" in str(errors[0]), errors[0]
    older.poll()
    assert await older.flush(5)
    await older.close(5)
