"""An insight larger than its sink writes fails its callback as it is published, also
while a checkpoint's transaction commits (durable state exactly once, the default).

The client refused it at ``produce``, and its record went to the dead letters. But
during a commit the records published wait for the next transaction: the refusal came
only as they went into it, where it failed that checkpoint (the instance stopped) and
lost the records held after it.
"""

from __future__ import annotations

import uuid

import pytest

from connectors.embedded import TopicFactory
from swimstream.config.broker import RECORD_MARGIN
from swimstream.metrics import MetricsRegistry
from swimstream.runtime import Insight
from swimstream.store.deferral import DeferringSink
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from tests.connectors.conftest import SinkFactory
from tests.support.kafka import read_topic


async def test_an_insight_too_large_published_while_a_checkpoint_commits_fails_its_callback(
    make_topic: TopicFactory, open_sink: SinkFactory
) -> None:
    topic = make_topic(partitions=1)
    sink = await open_sink(transactional_id=f"held-{uuid.uuid4().hex[:8]}")
    deferring = DeferringSink(sink)  # as the service's sink is, exactly once
    registry = MetricsRegistry()
    target = SinkTarget(topic, "json", deferring, 1_000_000 - RECORD_MARGIN)
    publish = InsightPublisher({"out": target}, registry, DeliveryFailures(registry))
    sink.begin_transaction()
    deferring.hold()  # a checkpoint commits
    publish(Insight("out", "a", 1, "/n/a"))
    with pytest.raises(ValueError, match=f"over the 934464 bytes a record of {topic}"):
        publish(Insight("out", "b", "x" * 1_500_000, "/n/b"))
    publish(Insight("out", "c", 3, "/n/c"))
    assert deferring.release() == 2  # the next transaction begins
    await sink.commit_transaction(10)
    found = read_topic(sink.bootstrap, topic)
    assert [(r.key(), r.value()) for r in found] == [(b"a", b"1"), (b"c", b"3")]
