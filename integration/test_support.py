"""The harness itself: an instance started again is stopped the way users stop one.

``bench/soak_churn.py`` starts and stops one :class:`~integration.support.Instance`
every minute. Its stop sent SIGTERM to the first process only: the flag saying SIGTERM
was sent stayed set, so every later stop waited 15 s and killed the process, and each
hand-over after the first was a crash (an abandoned transaction, a store found ahead of
the committed offsets and rebuilt), not the clean hand-over the soak means to measure.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from connectors.embedded import EmbeddedKafka
from integration.support import Instance
from integration.test_kafka_service import towers_config


def test_an_instance_started_again_drains_on_sigterm_again(
    kafka_broker: EmbeddedKafka, tmp_path: Path
) -> None:
    app = f"again{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(f"{app}.readings", partitions=4)
    instance = Instance(towers_config(kafka_broker, app), tmp_path, "again")
    for start in (1, 2):
        instance.start().wait_ready()
        instance.stop()
        assert instance.process is not None
        assert instance.process.returncode == 0, f"start {start}: {instance.log_tail()}"
    stops = instance.log_path.read_text().count("stopping: draining work in flight")
    assert stops == 2
