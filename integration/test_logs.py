"""The JSON logs of a real instance: each lifecycle line carries its fields by name.

A log pipeline (Loki, Elasticsearch) finds every line about a topic, a partition, a
group or an instance by a field of that name (:mod:`swimstream.logfields`); these read
the log a real ``swimstream run`` wrote against the embedded broker.
"""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable
from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka
from integration.support import Instance, wait_until
from swimstream.logfields import NAMED
from tests.support.kafka import produce_json

Entry = dict[str, Any]


def strict_lines(instance: Instance) -> list[Entry]:
    """Every line of the instance's log, as a strict parser reads it (no NaN)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    text = instance.log_path.read_text()
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line]


def said(entry: Entry) -> None:
    """The fields a text line leaves out are said by its message (a partition by its
    topic, which the message lists them under); ``app`` and ``instance`` excepted."""
    message = entry["message"]
    for name in NAMED - {"app", "instance"}:
        values = entry.get(name)
        for value in values if isinstance(values, list) else [] if values is None else [values]:
            text = str(value).rpartition("-")[0] if name == "partitions" else str(value)
            assert text in message, f"{name}={value!r} is not said by {message!r}"


def the_line(lines: list[Entry], what: Callable[[Entry], bool], name: str) -> Entry:
    found = [entry for entry in lines if what(entry)]
    assert found, f"no {name} line in {[e['message'] for e in lines]}"
    said(found[0])
    return found[0]


def test_the_lifecycle_lines_of_a_run_carry_their_fields(
    kafka_broker: EmbeddedKafka,
    start_instance: Callable[..., Instance],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWIMSTREAM_TEST_LOG_LEVEL", "debug")  # (checkpoints log at debug)
    app = "logs-fields"
    bootstrap = kafka_broker.bootstrap
    topic = kafka_broker.create_topic(f"{app}.entries", partitions=2)
    instance = start_instance(
        {
            "app": app,
            "broker": {"kind": "kafka", "bootstrap": bootstrap, "partitions": 2},
            "agents": {"account": {"class": "integration.apps:Ledger", "route": "/account/:id"}},
            "sources": [{"topic": topic, "route": "/account/{key}", "lane": "entry"}],
            "sinks": [{"publish": "processed", "topic": f"{app}.processed"}],
            "processing": "at-least-once",
        }
    )
    produce_json(bootstrap, topic, [(str(seq % 5), {"seq": seq}) for seq in range(50)])

    def checkpointed(entry: Entry) -> bool:
        return bool(entry["logger"] == "swimstream.checkpoint" and entry.get("records", 0) > 0)

    wait_until(lambda: any(map(checkpointed, strict_lines(instance))), 60, "a checkpoint")
    instance.signal(signal.SIGTERM)
    assert instance.wait_exit(timeout=30) == 0, instance.log_tail()
    lines = strict_lines(instance)
    everyone = {"app": app, "instance": f"{app}-{socket.gethostname()}"}
    for entry in lines:
        assert entry.items() >= everyone.items(), entry

    start = the_line(lines, lambda e: " running as " in e["message"], "start")
    assert start["logger"] == "swimstream.service"
    connected = the_line(lines, lambda e: e["message"].startswith("connected to "), "connected")
    assert connected["broker"] == bootstrap
    created = the_line(lines, lambda e: e["message"].startswith("created topic"), "created")
    assert created["partitions"] == [f"{created['topic']}-0", f"{created['topic']}-1"]
    partitions = [f"{topic}-0", f"{topic}-1"]
    source = {"group": app, "broker": bootstrap, "topics": [topic], "partitions": partitions}
    assigned = the_line(lines, lambda e: ": assigned " in e["message"], "assigned")
    assert assigned.items() >= source.items(), assigned
    checkpoint = the_line(lines, checkpointed, "checkpoint committed")
    assert isinstance(checkpoint["checkpoint"], int) and checkpoint["records"] > 0
    assert isinstance(checkpoint["seconds"], float | int)
    revoked = the_line(lines, lambda e: ": revoked " in e["message"], "revoked")
    assert revoked.items() >= source.items(), revoked
    the_line(lines, lambda e: e["message"].startswith("stopping: draining"), "drain")
    assert lines[-1]["message"] == "stopped"
