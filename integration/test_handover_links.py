"""Links between agents of one instance across a shard that leaves it and comes back.

Two instances of one durable app share two partitions. Each meter is watched by an
agent of the other shard (a value downlink, a map downlink and a join lane), linked
while the first instance held both. The second joins, so one shard moves there with its
agents; its meter (or watcher) changes or is restored there; the second stops, and the
shard comes back. The first's watchers must then show what their meters hold, without
any new record for the meters: the link to a meter restored from the changelog is
synced again as the meter loads (at once), and so is a restored watcher's stored link.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.embedded import EmbeddedKafka
from integration.support import Instance, wait_until
from integration.test_handover import PRODUCER_SETTINGS, held_partitions
from swimstream.routing import shard_for
from tests.support.kafka import produce_json

PARTITIONS = 2


def key_in(shard: int, prefix: str) -> str:
    """A key that the app's partitioner (murmur2) puts in ``shard``."""
    for n in range(1000):
        key = f"{prefix}-{n}"
        if shard_for(key.encode(), PARTITIONS, "murmur2") == shard:
            return key
    raise AssertionError(f"no key for shard {shard}")


def config(kafka: EmbeddedKafka, app: str, data: Path, instance_id: str) -> dict[str, Any]:
    return {
        "app": app,
        "broker": {
            "kind": "kafka",
            "bootstrap": kafka.bootstrap,
            "partitions": PARTITIONS,
            "static_membership": False,
        },
        "agents": {
            "meter": {"class": "integration.apps:Meter", "route": "/meter/:id"},
            "watcher": {"class": "integration.apps:MeterWatcher", "route": "/watcher/:id"},
        },
        "sources": [
            {"topic": f"{app}.readings", "route": "/meter/{key}", "lane": "read"},
            {"topic": f"{app}.watches", "route": "/watcher/{key}", "lane": "watch"},
        ],
        "processing": {"guarantee": "exactly-once", "commit_interval": 0.2},
        "store": {"path": str(data)},
        "mesh": {"listen": "127.0.0.1:0", "instance_id": instance_id},
    }


def view(instance: Instance, watcher: str) -> dict[str, Any]:
    """The watcher's lanes (a lane the instance does not serve now: its status)."""
    shown = {}
    for lane in ("level", "seen", "joined"):
        status, body = instance.request("GET", f"/watcher/{watcher}?lane={lane}")
        shown[lane] = body if status == 200 else status
    return shown


def test_watchers_show_their_meters_after_a_shard_came_back(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    app = "handover-links"
    readings, watches = f"{app}.readings", f"{app}.watches"
    for topic in (readings, watches):
        kafka_broker.create_topic(topic, partitions=PARTITIONS)
    data = tmp_path / "data"
    meters = [key_in(0, "meter"), key_in(1, "meter")]
    watchers = [key_in(1, "watcher"), key_in(0, "watcher")]  # each in the other shard

    # 1. One instance holds both shards; each watcher links to its meter.
    first = start_instance(config(kafka_broker, app, data, f"{app}-a"), name="a")
    pairs = list(zip(watchers, meters, strict=True))
    produce_json(
        kafka_broker.bootstrap,
        watches,
        [(w, f"/meter/{m}") for w, m in pairs],
        settings=PRODUCER_SETTINGS,
    )
    produce_json(
        kafka_broker.bootstrap,
        readings,
        [(m, {"n": 1}) for m in meters],
        settings=PRODUCER_SETTINGS,
    )
    before = {"level": 1, "seen": {"1": 1}, "joined": {"meter": 1}}
    for watcher, _ in pairs:
        wait_until(lambda w=watcher: view(first, w) == before, 60, f"{watcher} to see its meter")

    # 2. A second instance joins and takes one shard with its meter and watcher.
    second = start_instance(config(kafka_broker, app, data, f"{app}-b"), name="b", ready=False)
    wait_until(
        lambda: (
            len(held_partitions(second, readings)) == 1
            and len(held_partitions(first, readings)) == 1
        ),
        90,
        "a and b to share the partitions",
    )
    moved = held_partitions(second, readings).pop()
    print(f"shard {moved} moved to b")

    # 3. Both meters change: the one that moved on b, the other on a (its watcher is on b).
    produce_json(
        kafka_broker.bootstrap,
        readings,
        [(m, {"n": 2, "drop": "1"}) for m in meters],
        settings=PRODUCER_SETTINGS,
    )
    owner = {0: first, 1: second} if moved == 1 else {0: second, 1: first}
    for shard, meter in enumerate(meters):
        wait_until(
            lambda s=shard, m=meter: owner[s].request("GET", f"/meter/{m}?lane=level") == (200, 2),
            60,
            f"meter {meter} to read 2 on its owner",
        )

    # 4. The second stops: its shard comes back to the first, whose watchers must show
    # their meters' state with no new record for the meters.
    second.signal(signal.SIGTERM)
    assert second.wait_exit(timeout=20) == 0, second.log_tail()
    wait_until(
        lambda: len(held_partitions(first, readings)) == PARTITIONS, 90, "a to hold both again"
    )
    after = {"level": 2, "seen": {"2": 2}, "joined": {"meter": 2}}
    shown: dict[str, dict[str, Any]] = {}

    def every_watcher_shows_its_meter() -> bool:
        shown.update({watcher: view(first, watcher) for watcher in watchers})
        return all(v == after for v in shown.values())

    try:
        wait_until(every_watcher_shows_its_meter, 30, "the watchers to show their meters")
    except AssertionError:
        raise AssertionError(
            f"shard {moved} moved and came back; the meters show {after}, the watchers "
            f"{shown}\n{first.log_tail()}"
        ) from None
