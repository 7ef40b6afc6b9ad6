"""Records nobody vetted, end to end: a real broker, a real instance, durable state.

What the instance cannot take goes to the dead-letter topic with the reason, and it
keeps running; what it took must be served (GET), stored and restored after a restart.
Each of these stopped an instance, at every start, or failed every read of a lane:
a record nested over 254 levels (taken, and then no GET, stream or sink could write
it), counts added past 64 bits (not stored, not served, lost at a restart), and a
600 KB record kept as a map entry under its own text (a changelog record over the
producer's limit failed every checkpoint: the instance stopped, and again after each
restart, replaying that record).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from connectors.embedded import EmbeddedKafka
from integration.support import Instance, header_text, wait_until
from tests.support.kafka import produce_json, read_topic

MOST = 2**63 - 1
HUGE = "k" * 600_000  # the record fits (under 936 KB); its map entry, keyed by it, does not

TAKEN: dict[str, tuple[bytes, Any]] = {  # key -> (record value, the last lane after it)
    "u64": (b"18446744073709551615", 2**64 - 1),
    "big": (b"1e308", 1e308),
    "negzero": (b"-0.0", -0.0),
    "nul": (b'"a\\u0000b"', "a\x00b"),
    "twice": (b'{"a": 1, "a": 2}', {"a": 2}),
    "deep": (b"[" * 254 + b"]" * 254, None),  # as deep as can be written back
    "huge": (json.dumps({"key": HUGE}).encode(), {"key": HUGE}),
}
REFUSED: dict[bytes, tuple[bytes, str]] = {  # key -> (record value, the reason's start)
    b"deeper": (b"[" * 255 + b"]" * 255, "RecordDecodeError: JSON nested over 254 levels"),
    b"nan": (b'{"v": NaN}', "RecordDecodeError: invalid JSON"),
    b"surrogate": (b'"\\ud800"', "RecordDecodeError: invalid JSON"),
    b"\xff\xfe": (b"1", "RecordRoutingError: record key is not UTF-8 text"),
}


def config(kafka: EmbeddedKafka, app: str) -> dict[str, Any]:
    return {
        "app": app,
        "broker": {"kind": "kafka", "bootstrap": kafka.bootstrap, "partitions": 1},
        "agents": {"echo": {"class": "integration.apps:Echo", "route": "/echo/:id"}},
        "sources": [{"topic": f"{app}.in", "route": "/echo/{key}", "lane": "record"}],
        "sinks": [
            {"publish": "echo", "topic": f"{app}.echo"},
            {"from": "/echo/:id#last", "topic": f"{app}.last"},
        ],
        "processing": {"commit_interval": 0.25},
        "mesh": {"listen": "127.0.0.1:0", "instance_id": f"{app}-1"},
    }


def records() -> list[tuple[bytes, bytes]]:
    listed = [(key.encode(), value) for key, (value, _) in TAKEN.items()]
    listed += [(key, value) for key, (value, _) in REFUSED.items()]
    listed += [(b"count", f'{{"add": {MOST}}}'.encode())] * 3  # the 2nd and 3rd: too much
    return listed


def served(instance: Instance) -> dict[str, Any]:
    """Every taken agent's lanes, read over HTTP (each must answer 200)."""
    lanes: dict[str, Any] = {}
    for key in [*TAKEN, "count"]:
        for lane in ("last", "seen", "total"):
            status, body = instance.request("GET", f"/echo/{urllib.parse.quote(key)}?lane={lane}")
            assert status == 200, (key, lane, status, str(body)[:300])
            lanes[f"{key}#{lane}"] = body
    return lanes


def check(lanes: dict[str, Any]) -> None:
    for key, (_, last) in TAKEN.items():
        if key != "deep":
            assert lanes[f"{key}#last"] == last, key
    assert lanes["count#total"] == MOST
    assert list(lanes["huge#seen"]) in ([HUGE], [])  # in memory; not stored (1.2 MB)


def test_hostile_records_are_dead_lettered_or_served_and_survive_a_restart(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    app = "hostile"
    kafka_broker.create_topic(f"{app}.in", partitions=1)
    produce_json(kafka_broker.bootstrap, f"{app}.in", records())
    first = start_instance(config(kafka_broker, app))
    wait_until(
        lambda: (
            first.metric("swimstream_records_in_total") == len(records())
            and first.metric("swimstream_records_in_flight") == 0
        ),
        60,
        "every record handled",
    )
    dead: dict[bytes | None, str] = {}

    def dead_lettered() -> bool:  # (committed with the checkpoint after them)
        for message in read_topic(kafka_broker.bootstrap, f"{app}.dead-letter"):
            dead[message.key()] = header_text(message, "swimstream.error")
        return len(dead) == len(REFUSED) + 1

    wait_until(dead_lettered, 30, "the dead letters")
    assert set(dead) == {*REFUSED, b"count"}, dead
    for key, (_, reason) in REFUSED.items():
        assert dead[key].startswith(reason), (key, dead[key])
    assert "beyond 9223372036854775807, the most a counter holds" in dead[b"count"]
    lanes = served(first)
    check(lanes)
    wait_until(lambda: "is not stored by this checkpoint" in first.log_path.read_text(), 30, "log")
    assert first.request("GET", "/healthz")[0] == 200
    first.terminate()
    assert first.wait_exit(30) == 0, first.log_tail()

    again = start_instance(config(kafka_broker, app), name="again")
    again_lanes = served(again)
    check(again_lanes)
    assert again_lanes == {**lanes, "huge#seen": {}}  # the entry that was not stored
    assert again.request("GET", "/healthz")[0] == 200
