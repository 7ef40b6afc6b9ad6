"""The local store: rebuilt from the changelog alone, links and timers across restarts,
and faults that are loud and never give wrong answers."""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from connectors.embedded import EmbeddedKafka
from integration.support import Instance, wait_until
from integration.test_durability import check_exact_state, durable_config, settled
from integration.test_kafka_service import readings
from integration.test_lifecycle import ledger_config
from swimstream.crdt import PNCounter, encode
from swimstream.errors import StoreError
from swimstream.store.changelog import MARKER_KEY, Marker, entry_key, marker_value
from swimstream.store.changelog import headers as changelog_headers
from swimstream.store.inspect import describe
from tests.support.kafka import produce_json


def run_until_settled(
    start_instance: Callable[..., Instance], config: dict[str, Any], devices: int, name: str
) -> Instance:
    instance = start_instance(config, name=name)
    wait_until(lambda: settled(instance, devices), 120, f"{name} to process everything")
    return instance


def stop(instance: Instance) -> None:
    instance.signal(signal.SIGTERM)
    assert instance.wait_exit(15) == 0, instance.log_tail()


def produce_readings(kafka: EmbeddedKafka, app: str, events: list[dict[str, Any]]) -> None:
    produce_json(kafka.bootstrap, f"{app}.readings", ((e["device"], e) for e in events))


def first_run(
    kafka: EmbeddedKafka,
    start_instance: Callable[..., Instance],
    app: str,
    data: Path,
    mode: str,
    events: list[dict[str, Any]],
) -> dict[str, Any]:
    """An app's topic made, ``events`` produced and processed by an instance stopped
    cleanly once settled; returns the app's config, for the next run."""
    kafka.create_topic(f"{app}.readings", partitions=4)
    config = durable_config(kafka, app, data, mode)
    produce_readings(kafka, app, events)
    devices = len({e["device"] for e in events})
    stop(run_until_settled(start_instance, config, devices, "first"))
    return config


def test_with_the_sqlite_file_gone_state_is_rebuilt_from_the_changelog(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    app = "store-lost"
    data = tmp_path / "data"
    events = readings(20_000, 1_000, seed=31)
    config = first_run(kafka_broker, start_instance, app, data, "exactly-once", events[:12_000])
    assert list(data.glob("*.sqlite")), "the first run wrote a local store"
    shutil.rmtree(data)  # a new machine

    produce_readings(kafka_broker, app, events[12_000:])
    second = run_until_settled(start_instance, config, 1_000, "rebuilt")
    log = second.log_path.read_text()
    restored = [line for line in log.splitlines() if "recovery" in line or '.changelog"' in line]
    try:
        check_exact_state(second, events, sample=100)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; recovery said:\n" + "\n".join(restored)) from exc
    # (Every start logs one, "0 of about 0 records" with nothing to read: the rebuild's
    # says how much of the changelog it read.)
    progress = re.findall(rf"restoring state from {app}\.changelog: ([\d,]+) of about", log)
    assert progress and int(progress[-1].replace(",", "")) > 0, "a progress line while rebuilding"
    assert '"skipped_checkpoints": []' in log, "after a clean stop every checkpoint committed"
    assert second.request("GET", "/healthz")[0] == 200


def test_a_clean_at_least_once_restart_keeps_its_store_and_its_state(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    """At least once, a checkpoint's offsets commit after its flush and before its local
    write; a store found ahead of the offsets is set aside and rebuilt. A clean stop must
    leave its final checkpoint's offsets committed, or every restart would rebuild."""
    app = "store-alos"
    data = tmp_path / "data"
    events = readings(6_000, 500, seed=41)
    config = first_run(kafka_broker, start_instance, app, data, "at-least-once", events[:4_000])
    produce_readings(kafka_broker, app, events[4_000:])
    second = run_until_settled(start_instance, config, 500, "second")
    check_exact_state(second, events, sample=50)
    assert not list(data.glob("*.ahead")), second.log_tail()
    assert "set aside and rebuilt" not in second.log_path.read_text()


def test_open_links_and_pending_timers_survive_a_crash(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    app = "store-links-timers"
    config = {
        "app": app,
        "broker": {"kind": "kafka", "bootstrap": kafka_broker.bootstrap, "partitions": 2},
        "agents": {
            "gauge": {"class": "integration.apps:Gauge", "route": "/gauge/:id"},
            "reminder": {"class": "integration.apps:Reminder", "route": "/reminder/:id"},
        },
        "processing": {"guarantee": "exactly-once", "commit_interval": 0.2},
        "store": {"path": str(tmp_path / "data")},
        "mesh": {"listen": "127.0.0.1:0", "instance_id": f"{app}-1"},
        # (the web keys reach the server: a bigger body is 413, a second stream 503)
        "web": {"max_body_size": 64, "max_streams": 1},
    }
    first = start_instance(config, name="first")
    assert first.request("POST", "/gauge/g?lane=level", 5)[0] == 200
    assert first.request("POST", "/gauge/g?lane=level", "x" * 100)[0] == 413
    stream = "/gauge/g?lane=level&stream=1"
    with urllib.request.urlopen(first.url + stream, timeout=10) as held:
        assert held.status == 200
        assert first.request("GET", stream)[0] == 503
    assert first.request("POST", "/reminder/r?lane=watch", "/gauge/g")[0] == 200
    wait_until(lambda: first.lane("/reminder/r", "watched") == 5, 10, "the link to sync")
    assert first.request("POST", "/reminder/r?lane=remind", {"delay": 4})[0] == 200
    reminded = time.monotonic()
    # Killed once a committed checkpoint holds the timer: the local store holds only
    # those. (A second's sleep was "several checkpoints" on a fast machine only.) A
    # timer no checkpoint stores never shows there.
    store = tmp_path / "data" / f"{app}-1.sqlite"

    def timer_stored() -> bool:
        try:
            return any(
                "/reminder/r#@timers" in line and '"ring"' in line
                for line in describe(store, node="/reminder/r")
            )
        except StoreError:  # not created yet
            return False

    wait_until(timer_stored, 30, "a committed checkpoint holding the timer")
    first.signal(signal.SIGKILL)
    first.wait_exit(10)
    assert time.monotonic() < reminded + 4, "the timer came due before the kill"
    time.sleep(reminded + 4.5 - time.monotonic())  # it comes due while the instance is down

    second = start_instance(config, name="second")
    wait_until(lambda: second.lane("/reminder/r", "fired") == 1, 15, "the overdue timer to fire")
    time.sleep(1.5)
    assert second.lane("/reminder/r", "fired") == 1, "it fires once"
    assert second.request("POST", "/gauge/g?lane=level", 9)[0] == 200
    wait_until(lambda: second.lane("/reminder/r", "watched") == 9, 10, "the link to deliver")


@contextlib.contextmanager
def read_only_directory(tmp_path: Path) -> Iterator[Path]:
    """A data directory this process (root) cannot write: a read-only tmpfs, or, where
    mounting is not allowed, a kernel directory nobody can create files in."""
    target = tmp_path / "read-only"
    target.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield target if mounted else Path("/proc/self/fdinfo")
    finally:
        if mounted:
            subprocess.run(["umount", str(target)], capture_output=True)


def test_a_corrupt_store_and_a_read_only_directory_are_loud_and_answers_stay_right(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    app = "store-faults"
    data = tmp_path / "data"
    events = readings(6_000, 300, seed=41)
    kafka_broker.create_topic(f"{app}.readings", partitions=4)
    config = durable_config(kafka_broker, app, data, "at-least-once")
    produce_json(kafka_broker.bootstrap, f"{app}.readings", ((e["device"], e) for e in events))
    stop(run_until_settled(start_instance, config, 300, "first"))

    [store] = data.glob("*.sqlite")
    raw = bytearray(store.read_bytes())
    rng = random.Random(7)
    for position in rng.sample(range(len(raw)), len(raw) // 3):
        raw[position] = rng.randrange(256)
    store.write_bytes(bytes(raw))
    corrupt = run_until_settled(start_instance, config, 300, "corrupt")
    status, body = corrupt.request("GET", "/healthz")
    assert status == 503 and "store" in body["checks"], body
    assert "rebuilt from the changelog" in body["checks"]["store"]
    check_exact_state(corrupt, events, sample=50)
    stop(corrupt)

    with read_only_directory(tmp_path) as unwritable:
        config["store"] = {"path": str(unwritable)}
        readonly = run_until_settled(start_instance, config, 300, "read-only")
        status, body = readonly.request("GET", "/healthz")
        assert status == 503 and "in memory" in body["checks"]["store"], body
        check_exact_state(readonly, events, sample=50)
        stop(readonly)


def test_a_store_ahead_of_its_changelog_stops_the_start_with_a_clear_error(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    app = "store-ahead"
    data = tmp_path / "data"
    events = readings(2_000, 100, seed=5)
    kafka_broker.create_topic(f"{app}.readings", partitions=4)
    produce_json(kafka_broker.bootstrap, f"{app}.readings", ((e["device"], e) for e in events))
    config = durable_config(kafka_broker, app, data, "exactly-once")
    stop(run_until_settled(start_instance, config, 100, "first"))

    with EmbeddedKafka() as other:  # another cluster: its changelog topic starts empty
        other.create_topic(f"{app}.readings", partitions=4)
        moved = durable_config(other, app, data, "exactly-once")
        second = start_instance(moved, name="elsewhere", ready=False)
        assert second.wait_exit(90) != 0
        log = second.log_path.read_text()
        assert "belongs to another changelog" in log, second.log_tail()
        assert list(data.glob("*.sqlite")), "the store is left where it was, for the user"


def test_a_deleted_changelog_stops_the_start_naming_the_store_that_holds_the_state(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    """Deleted while the instance was down: the error said "move it away to rebuild
    this app's state from the changelog", which, the changelog being empty and the
    offsets committed, threw away the only copy of the state without a word."""
    app = "store-changelog-deleted"
    data = tmp_path / "data"
    events = readings(2_000, 100, seed=9)
    config = first_run(kafka_broker, start_instance, app, data, "exactly-once", events)
    [store] = data.glob("*.sqlite")
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    for deleted in admin.delete_topics([f"{app}.changelog"], operation_timeout=10).values():
        deleted.result(10)

    second = start_instance(config, name="deleted", ready=False)
    assert second.wait_exit(90) == 1, second.log_tail()
    log = second.log_path.read_text()
    assert f"The local store is {store}: if this is the app's cluster" in log, log
    assert "holds the only copy of the state" in log
    stored = next(describe(store))  # ("<file>: N agents": the devices, towers, world)
    assert int(stored.rsplit(": ", 1)[1].split()[0]) > 100, stored


RESTORED = 300_000
"""Agents in the store the restore test rebuilds: a restore of several seconds here."""


def counter_state(count: int) -> bytes:
    """A counter lane's stored state, as an earlier incarnation's checkpoint wrote it."""
    counter = PNCounter("earlier")
    counter.add(count)
    return encode(counter.snapshot())


def test_sigterm_while_restoring_a_big_store_exits_at_once_and_the_next_start_restores_it(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    """``docker stop`` kills after 10 s; a rebuild can take minutes. The stop must end
    the restore rather than wait for it, and cost nothing but the restore's own work."""
    app = "store-restore-stop"
    config = ledger_config(kafka_broker.bootstrap, app)
    # It creates the topics, the changelog's too, before it serves: no need to wait for
    # its group to assign it the partitions.
    stop(start_instance(config, name="empty", ready=False).wait_serving())
    # The changelog a long-running instance leaves: one committed checkpoint holding
    # the count of RESTORED accounts, over the four shards.
    states = [counter_state(n + 1) for n in range(97)]
    checkpoint = 1_000_000
    for shard in range(4):
        produce_json(
            kafka_broker.bootstrap,
            f"{app}.changelog",
            (
                (entry_key(f"/account/{n}", "count"), states[n % 97])
                for n in range(shard, RESTORED, 4)
            ),
            partition=shard,
            headers=changelog_headers(checkpoint, {}),
            timeout=120,
        )
        marker = marker_value(Marker(checkpoint, {}, checkpoint - 1, checkpoint))
        produce_json(
            kafka_broker.bootstrap, f"{app}.changelog", [(MARKER_KEY, marker)], partition=shard
        )

    restoring = start_instance(config, name="restoring", ready=False)
    wait_until(
        lambda: "restoring" in str(restoring.request("GET", "/readyz")[1]), 60, "the restore"
    )
    time.sleep(0.3)  # into reading the changelog
    asked = time.monotonic()
    restoring.signal(signal.SIGTERM)
    assert restoring.wait_exit(10) == 0, restoring.log_tail()
    took = time.monotonic() - asked
    log = restoring.log_path.read_text()
    assert "stopped while restoring state" in log, restoring.log_tail()
    assert '"restored ' not in log, "the restore ran to its end before the stop"

    again = start_instance(config, name="restored", ready=False).wait_serving(180)
    [summary] = [line for line in again.log_path.read_text().splitlines() if '"restored ' in line]
    again.wait_ready()  # lanes are served once the group assigned this instance its shards
    for n in (0, 1, 96, 97, RESTORED // 2 + 1, RESTORED - 1):
        assert again.lane(f"/account/{n}", "count") == n % 97 + 1
    stop(again)
    print(f"exit {took:.1f} s after SIGTERM during the restore; then: {summary}")
