"""A changelog holding a record swimstream did not write: the start restores around it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from connectors.embedded import EmbeddedKafka
from integration.support import Instance, wait_until
from integration.test_durability import durable_config, settled
from integration.test_kafka_service import readings
from tests.support.kafka import produce_json


def test_a_record_another_producer_wrote_into_the_changelog_is_skipped_at_a_rebuild(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    """It stopped every start with a traceback (``ValueError: not a changelog key``),
    compaction keeping the record for good."""
    app = "foreign"
    events = readings(5_000, 100, seed=3)
    kafka_broker.create_topic(f"{app}.readings", partitions=4)
    config = durable_config(kafka_broker, app, tmp_path / "data", "exactly-once")
    produce_json(kafka_broker.bootstrap, f"{app}.readings", ((e["device"], e) for e in events))
    first = start_instance(config, name="first")  # (ready once caught up)
    wait_until(lambda: settled(first, 100), 120, "the readings processed")
    first.terminate()
    assert first.wait_exit(30) == 0, first.log_tail()
    produce_json(kafka_broker.bootstrap, f"{app}.changelog", [("not-an-agent", {"x": 1})])
    shutil.rmtree(tmp_path / "data")  # a new machine: every partition is read
    second = start_instance(config, name="second")
    wait_until(lambda: settled(second, 100), 120, "the state restored")
    said = second.log_path.read_text()
    assert "skipped a record swimstream did not write (key b'not-an-agent')" in said, said[-3000:]
