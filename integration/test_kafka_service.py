"""The service against a real Kafka-protocol broker (Tansu), as separate processes."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Message

from connectors.embedded import EmbeddedKafka
from examples.towers import HOT_TEMPERATURE
from integration.support import Instance, header_text, json_value, key_text, wait_until
from tests.support.kafka import produce_json, read_topic
from tests.support.towers import TOWERS_AGENTS


def towers_config(kafka: EmbeddedKafka, app: str, **extra: Any) -> dict[str, Any]:
    return {
        "app": app,
        "broker": {"kind": "kafka", "bootstrap": kafka.bootstrap, "partitions": 4},
        "agents": TOWERS_AGENTS,
        "sources": [{"topic": f"{app}.readings", "route": "/device/{key}", "lane": "reading"}],
        "sinks": [
            {"publish": "alerts", "topic": f"{app}.alerts"},
            {"from": "/tower/:id#summary", "topic": f"{app}.summaries"},
        ],
        "processing": "at-least-once",
        **extra,
    }


def canonical(value: Any) -> bytes:
    """``value`` as JSON with sorted keys: an order for lists of equal-shaped values."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def readings(count: int, devices: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    home = {d: f"t{rng.randrange(8)}" for d in range(devices)}
    out = []
    for ts in range(count):
        device = rng.randrange(devices)
        if rng.random() < 0.05:
            home[device] = f"t{rng.randrange(8)}"
        out.append(
            {
                "device": str(device),
                "tower": home[device],
                "temp": round(rng.uniform(40, 100), 1),
                "ts": ts,
            }
        )
    return out


def test_every_agent_and_every_insight_matches_a_direct_computation(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    app = "e2e-kafka"
    events = readings(20_000, 1_000, seed=11)
    kafka_broker.create_topic(f"{app}.readings", partitions=4)
    instance = start_instance(towers_config(kafka_broker, app))
    produce_json(kafka_broker.bootstrap, f"{app}.readings", ((e["device"], e) for e in events))

    wait_until(
        lambda: instance.metric("swimstream_records_in_total") >= len(events),
        90,
        "all records consumed",
    )
    latest = {e["device"]: e for e in events}
    counts: dict[str, int] = {}
    for e in events:
        counts[e["device"]] = counts.get(e["device"], 0) + 1

    # Each partition is worked through on its own: one device's last record processed
    # says nothing of the others'. A device whose count is right has had its last record
    # (counted in the callback that sets its status); a lost or doubled record keeps it
    # wrong for good.
    unprocessed = sorted(latest)

    def every_device_processed() -> bool:
        unprocessed[:] = [
            d for d in unprocessed if instance.lane(f"/device/{d}", "readings") != counts[d]
        ]
        return not unprocessed

    wait_until(
        every_device_processed,
        60,
        lambda: f"every device's records processed; {len(unprocessed)} not, e.g. {unprocessed[:5]}",
    )
    for device, event in latest.items():
        node = f"/device/{device}"
        assert instance.lane(node, "status") == {
            "temp": event["temp"],
            "tower": event["tower"],
            "ts": event["ts"],
        }
        assert instance.lane(node, "readings") == counts[device]
        mine = [e for e in events if e["device"] == device][-50:]
        assert instance.lane(node, "history") == {str(e["ts"]): e["temp"] for e in mine}

    towers: dict[str, list[float]] = {}
    for event in latest.values():
        towers.setdefault(event["tower"], []).append(event["temp"])
    for tower, temps in towers.items():
        expected = {
            "devices": len(temps),
            "hot": sum(t > HOT_TEMPERATURE for t in temps),
            "max_temp": max(temps),
        }
        wait_until(
            lambda t=tower, e=expected: instance.lane(f"/tower/{t}", "summary") == e,
            20,
            f"tower {tower}",
        )

    hot = [e for e in events if e["temp"] > HOT_TEMPERATURE]
    wait_until(
        lambda: len(read_topic(kafka_broker.bootstrap, f"{app}.alerts")) >= len(hot), 30, "alerts"
    )
    # Each record as a consumer of the insight topic sees it: keyed by the device, the
    # publishing agent in a header, the alert whole.
    alerts = [
        (key_text(m), header_text(m, "swimstream.node"), json_value(m))
        for m in read_topic(kafka_broker.bootstrap, f"{app}.alerts")
    ]
    expected_alerts = [
        (
            e["device"],
            f"/device/{e['device']}",
            {"device": e["device"], "temp": e["temp"], "tower": e["tower"]},
        )
        for e in hot
    ]
    assert sorted(alerts, key=canonical) == sorted(expected_alerts, key=canonical)

    # The lane sink delivers a tower's last summary a moment after the lane changed; a
    # sink that missed a change leaves the topic behind the lane for good.
    summaries: list[Message] = []
    last_summary: dict[str, Any] = {}

    def topic_ends_at_every_summary() -> bool:
        summaries[:] = read_topic(kafka_broker.bootstrap, f"{app}.summaries")
        last_summary.clear()
        last_summary.update((key_text(m), json_value(m)) for m in summaries)
        return all(
            last_summary.get(tower) == instance.lane(f"/tower/{tower}", "summary")
            for tower in towers
        )

    wait_until(
        topic_ends_at_every_summary,
        30,
        lambda: f"the summaries topic to end at every tower's summary: {last_summary}",
    )
    # State is durable: every insight, published or from a lane sink, names the
    # checkpoint whose commit vouches for it.
    for message in [*summaries, *read_topic(kafka_broker.bootstrap, f"{app}.alerts")]:
        assert int(header_text(message, "swimstream.checkpoint")) > 0
    assert instance.metric("swimstream_dead_letters_total") == 0


@pytest.mark.parametrize(
    ("processing", "durable", "coalesce"),
    [("at-least-once", False, "100ms"), ("exactly-once", True, "1h")],
    ids=["timer", "checkpoints"],
)
def test_a_coalesced_lane_sink_ends_on_every_towers_summary_with_fewer_records(
    kafka_broker: EmbeddedKafka,
    start_instance: Callable[..., Instance],
    tmp_path: Path,
    processing: str,
    durable: bool,
    coalesce: str,
) -> None:
    """Coalesced every 100 ms by its timer, or (at 1 h) only at the checkpoints' cuts."""
    app = f"coalesce-{processing}"
    events = readings(6_000, 300, seed=5)
    kafka_broker.create_topic(f"{app}.readings", partitions=4)
    config = towers_config(kafka_broker, app)
    config["sinks"][1]["coalesce"] = coalesce
    # The same lane uncoalesced beside it: a record for every change, to compare with.
    config["sinks"].append({"from": "/tower/:id#summary", "topic": f"{app}.summary-changes"})
    config["processing"] = {"guarantee": processing, "commit_interval": 0.25}
    config["store"] = {"path": str(tmp_path / "store"), "durable": durable}
    instance = start_instance(config)
    produce_json(kafka_broker.bootstrap, f"{app}.readings", ((e["device"], e) for e in events))

    latest = {e["device"]: e for e in events}
    towers = sorted({e["tower"] for e in latest.values()})
    wait_until(
        lambda: (
            instance.metric("swimstream_records_in_total") >= len(events)
            and instance.metric("swimstream_records_in_flight") == 0
        ),
        90,
        "all records done",
    )

    def last_summaries() -> dict[str, Any]:
        summaries = read_topic(kafka_broker.bootstrap, f"{app}.summaries")
        return {key_text(m): json_value(m) for m in summaries}

    wait_until(
        lambda: all(
            last_summaries().get(t) == instance.lane(f"/tower/{t}", "summary") for t in towers
        ),
        30,
        "every tower's latest summary in the topic",
    )
    produced = len(read_topic(kafka_broker.bootstrap, f"{app}.summaries"))
    changes = len(read_topic(kafka_broker.bootstrap, f"{app}.summary-changes"))
    assert produced < changes / 2, (produced, changes)  # 16 and 796 when written


def test_bad_records_go_to_the_dead_letter_topic_and_good_ones_are_processed(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    app = "e2e-bad-input"
    config = towers_config(kafka_broker, app)
    config["sources"] = [
        {"topic": f"{app}.readings", "route": "/device/{payload.device}", "lane": "reading"}
    ]
    kafka_broker.create_topic(f"{app}.readings", partitions=4)
    instance = start_instance(config)
    good = [
        {"device": str(n % 20), "tower": "t1", "temp": 50.0 + n % 7, "ts": n} for n in range(300)
    ]
    bad: list[tuple[bytes, bytes, str]] = [
        (b"x1", b"{not json", "invalid JSON"),
        (
            b"x2",
            orjson.dumps({"tower": "t1", "temp": 50, "ts": 1}),
            "payload field 'device' is missing",
        ),
        (
            b"x3",
            orjson.dumps({"device": "7", "tower": "t1", "temp": "hot", "ts": 2}),
            "could not convert string to float",
        ),
    ]
    batch: list[tuple[str, Any]] = [(str(e["device"]), e) for e in good]
    for index, (key, value, _) in enumerate(bad):
        batch.insert(50 + index * 90, (key.decode(), value))
    # A record larger than the sinks write (librdkafka's 1,000,000 bytes): its state could
    # never be checkpointed, nor the record itself be dead-lettered whole.
    huge = {"device": "3", "tower": "t1", "temp": 50.0, "ts": 0, "pad": "x" * 1_500_000}
    produce_json(kafka_broker.bootstrap, f"{app}.readings", batch[:100])
    produce_json(
        kafka_broker.bootstrap,
        f"{app}.readings",
        [("huge", huge)],
        settings={"message.max.bytes": 4_000_000},
    )
    produce_json(kafka_broker.bootstrap, f"{app}.readings", batch[100:])

    wait_until(
        lambda: instance.metric("swimstream_dead_letters_total") >= 4, 60, "four dead letters"
    )
    # The metric counts a letter as it is handed to the producer; the broker has it a
    # moment later. A letter never sent keeps the topic short for good.
    dead: list[Message] = []

    def four_in_the_topic() -> bool:
        dead[:] = read_topic(kafka_broker.bootstrap, f"{app}.dead-letter")
        return len(dead) >= 4

    wait_until(four_in_the_topic, 30, lambda: f"four dead letters in the topic, not {len(dead)}")
    assert len(dead) == 4
    by_key = {m.key(): m for m in dead}
    too_large = by_key[b"huge"]
    assert too_large.value() is None, "left out: it would not fit the dead-letter topic"
    assert "over the" in header_text(too_large, "swimstream.error")
    assert header_text(too_large, "swimstream.value.dropped").startswith("1500")
    for key, value, reason in bad:
        message = by_key[key]
        assert message.value() == value, "the record as it came, to fix and replay"
        assert reason in header_text(message, "swimstream.error")
    # Where each bad record sits, read back from the source topic itself: the origin
    # headers must lead an operator to that record, not to some other one.
    origin = {
        m.key(): (m.partition(), m.offset())
        for m in read_topic(kafka_broker.bootstrap, f"{app}.readings")
        if m.key() in by_key
    }
    for letter_key, letter in by_key.items():
        assert header_text(letter, "swimstream.origin.topic") == f"{app}.readings"
        where = (
            int(header_text(letter, "swimstream.origin.partition")),
            int(header_text(letter, "swimstream.origin.offset")),
        )
        assert where == origin[letter_key], (letter_key, where, origin[letter_key])
    for device in range(20):
        expected = sum(1 for e in good if e["device"] == str(device))
        wait_until(
            lambda d=device, n=expected: instance.lane(f"/device/{d}", "readings") == n,
            20,
            f"device {device}",
        )
    assert instance.metric("swimstream_records_in_total") == len(good) + len(bad) + 1
