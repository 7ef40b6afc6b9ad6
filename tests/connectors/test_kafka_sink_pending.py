"""What a Kafka sink counts as pending: every record librdkafka's queue holds.

With durable state exactly once (the default), insights and lane sink records go into
the checkpoint's transaction without delivery reports (its commit vouches for them), and
the sink counted only reported records: with the broker slow, the sources never paused
for the sink however many insights the queue held, until ``produce`` found it full and
held the event loop for 10 s at a time, then failed the records.
"""

from __future__ import annotations

import uuid

from connectors.embedded import EmbeddedKafka, TopicFactory
from swimstream.store.deferral import DeferringSink
from swimstream.streams.sink_pressure import SinkLimit, SinkPressure
from tests.connectors.conftest import SinkFactory


async def test_records_in_a_transaction_count_as_pending_until_the_broker_took_them(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    topic = make_topic(partitions=1)
    sink = await open_sink(transactional_id=f"pending-{uuid.uuid4().hex[:8]}")
    sink.begin_transaction()
    deferring = DeferringSink(sink)  # as the service's sink is, exactly once
    pressure = SinkPressure([SinkLimit(deferring, 100)])
    vouched: list[BaseException | None] = []
    kafka_broker.pause()
    try:
        for n in range(500):
            deferring.produce(topic, b"k", b"%d" % n, None, vouched.append)
        sink.poll()
        assert len(vouched) == 500  # (told at once: the commit vouches for them)
        assert deferring.pending == 500
        assert pressure.crowded()
    finally:
        kafka_broker.resume()
    await sink.commit_transaction(10)
    assert deferring.pending == 0
    assert pressure.eased()
