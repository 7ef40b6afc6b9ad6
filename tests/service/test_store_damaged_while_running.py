"""A local store found damaged while running stops the instance, and loses nothing.

The damage a start does not see (opening reads the first pages and the shards' positions)
is found when an agent is first loaded. That read failed as if the agent's own state did
not fit its class: the record went to the dead letters, the next checkpoint committed
its offset, and the start after, rebuilding from the changelog, came back without it.
Now the plane crashes: no checkpoint cuts past the record, the service stops (exit 1),
and the next start sets the file aside, rebuilds it, and reads the record again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from connectors.embedded import EmbeddedKafka
from connectors.factory import open_connectors
from swimstream.config import parse_config
from swimstream.errors import StoreError
from swimstream.service import Service
from tests.service.test_lifecycle_lines import one_topic_app
from tests.support.kafka import committed_offsets, produce_json, read_topic
from tests.support.waiting import wait_until


def reading(ts: int) -> tuple[bytes, dict[str, Any]]:
    return b"d0", {"device": "d0", "tower": "t0", "temp": 20.0, "ts": ts}


def flip_a_bit_of_the_agent(directory: Path) -> Path:
    """Damage /device/d0's rows in the one store in ``directory`` so that their CRCs
    fail (the file opens as before); returns the store's path."""
    [path] = directory.glob("*.sqlite")
    with sqlite3.connect(path) as raw:
        changed = raw.execute("UPDATE state SET crc = crc + 1 WHERE node = '/device/d0'")
        assert changed.rowcount > 0
    return path


def set_aside(directory: Path) -> list[Path]:
    """The damaged stores a start moved aside in ``directory``."""
    return list(directory.glob("*.sqlite.corrupt-*"))


async def run_until(config: dict[str, Any], readings: int) -> None:
    """Start a service, wait until /device/d0 counted ``readings`` and its checkpoint
    is in the local store, and stop it cleanly."""
    service = Service(parse_config(config, {}), open_connectors)
    await service.start()
    try:
        assert service.plane is not None and service.durability is not None
        plane, durability = service.plane, service.durability

        def counted() -> bool:
            if service.failure is not None:
                raise AssertionError(f"the service failed: {service.failure}")
            return plane.activate_existing("/device/d0") and (
                plane.get("/device/d0", "readings") == readings
            )

        await wait_until(counted, 60, f"/device/d0 to count {readings}")
    finally:
        service.stop()
        await service.close()
    assert service.failure is None
    assert durability.recovery is not None


async def test_a_store_damaged_under_an_agent_stops_the_service_and_loses_no_record(
    kafka_broker: EmbeddedKafka, tmp_path: Path
) -> None:
    app = "damaged-running"
    topic = f"{app}.readings"
    kafka_broker.create_topic(topic, partitions=1)
    config = one_topic_app(kafka_broker.bootstrap, app)
    config["store"] = {"path": str(tmp_path)}
    config["mesh"]["instance_id"] = f"{app}-1"
    produce_json(kafka_broker.bootstrap, topic, [reading(ts) for ts in range(3)])
    await run_until(config, 3)
    path = flip_a_bit_of_the_agent(tmp_path)

    produce_json(kafka_broker.bootstrap, topic, [reading(3)])
    service = Service(parse_config(config, {}), open_connectors)
    await service.start()
    try:
        await wait_until(lambda: service.failure is not None, 60, "the service to fail")
        assert isinstance(service.failure, StoreError), service.failure
        assert str(path) in str(service.failure)
        assert not service.health.health().ok
    finally:
        service.stop()
        await service.close()
    assert committed_offsets(kafka_broker.bootstrap, app, topic, 1) == {0: 3}
    assert read_topic(kafka_broker.bootstrap, f"{app}.dead-letter", timeout=5.0) == []

    await run_until(config, 4)  # the file set aside, rebuilt, and the record read again
    assert set_aside(tmp_path)
