"""The older of two exactly-once instances of one id, fenced while idle, stops cleanly."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.embedded import EmbeddedKafka
from integration.support import Instance, wait_until
from integration.test_durability import durable_config, settled
from integration.test_kafka_service import readings
from tests.support.kafka import produce_json


def test_an_idle_instance_fenced_by_a_newer_one_of_its_id_stops_without_a_traceback(
    kafka_broker: EmbeddedKafka,
    start_instance: Callable[..., Instance],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The newer one runs as on another host (its own store and temporary directory,
    where the lock that refuses it on one host lives). The older one, idle, learns it
    was fenced at its final checkpoint, and its last word says so, naming the setting
    to fix: it said "another producer with the same transactional.id took over", an id
    the user never set (or only "_STATE"; see tests/connectors/test_kafka_sink_fenced.py,
    also for the traceback a stop could end in)."""
    app = "fenced-idle"
    events = readings(3_000, 100, seed=43)
    kafka_broker.create_topic(f"{app}.readings", partitions=2)
    produce_json(kafka_broker.bootstrap, f"{app}.readings", ((e["device"], e) for e in events))
    config = durable_config(kafka_broker, app, tmp_path / "data", "exactly-once")
    older = start_instance(config, name="older")  # (ready once caught up)
    wait_until(lambda: settled(older, 100), 120, "the readings processed")
    elsewhere = tmp_path / "other-host-tmp"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    start_instance({**config, "store": {"path": str(tmp_path / "other")}}, "newer")
    older.signal(signal.SIGTERM)
    assert older.wait_exit(60) == 1, older.log_tail()  # (a failure: its checkpoint's)
    plain = [line for line in older.log_path.read_text().splitlines() if line[:1] != "{"]
    assert not any("Traceback" in line for line in plain), "\n".join(plain)
    assert "fenced" in plain[-1] and "mesh.instance_id" in plain[-1], plain[-1]
