"""A changelog read whose broker goes away says so as a broker that does not answer:
the start waits for it (and reads again) rather than failing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from connectors.embedded import EmbeddedKafka
from connectors.kafka.changelog import KafkaChangelogReader
from swimstream.errors import BrokerError
from swimstream.streams import InboundRecord
from tests.support.kafka import produce_json


async def test_a_broker_gone_in_the_middle_of_a_changelog_read_is_unreachable() -> None:
    """A broker stopped (a restart, a rolling upgrade) while the start restored state:
    the read failed with "Unknown partition", not marked as a broker that does not
    answer, and the start failed with exit 1 instead of waiting for it."""
    with EmbeddedKafka() as broker:
        broker.create_topic("outage.changelog", partitions=1, compacted=True)
        records = [(f"k{n}".encode(), {"v": n}) for n in range(100_000)]
        produce_json(broker.bootstrap, "outage.changelog", records)
        reader = KafkaChangelogReader(broker.bootstrap)

        def on_records(_: Sequence[InboundRecord]) -> None:
            broker.stop()  # (idempotent: the first batch stops it, far from the end)

        with pytest.raises(BrokerError) as failed:
            await reader.read("outage.changelog", {0: 0}, on_records)
    assert failed.value.unreachable, failed.value
