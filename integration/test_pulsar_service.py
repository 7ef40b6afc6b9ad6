"""The service against a real Pulsar-protocol broker (pulsar-lite), as a separate process."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from connectors.embedded import EmbeddedKafka, EmbeddedPulsar
from connectors.pulsar import PULSAR_LITE_SETTINGS, PulsarSink, PulsarSource
from examples.towers import HOT_TEMPERATURE
from integration.support import Instance, wait_until
from integration.test_kafka_service import canonical, readings
from integration.test_lifecycle import entries
from tests.support.towers import pulsar_towers_config


async def _produce(url: str, topic: str, events: list[dict[str, Any]]) -> None:
    sink = PulsarSink(url, settings=PULSAR_LITE_SETTINGS)
    await sink.open()
    for event in events:
        sink.produce(topic, event["device"].encode(), orjson.dumps(event))
    assert await sink.flush(30)
    await sink.close()


async def _read(url: str, topic: str, expected: int) -> list[tuple[str, str, Any]]:
    """(key, swimstream.node header, JSON value) of the first ``expected`` records."""
    source = PulsarSource(url, "test-reader", [topic], settings=PULSAR_LITE_SETTINGS)
    await source.open()
    seen: list[tuple[str, str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 30
    while len(seen) < expected and asyncio.get_running_loop().time() < deadline:
        batch = source.consume(1000)
        seen += [
            (
                (record.key() or b"").decode(),
                dict(record.headers() or ()).get("swimstream.node", b"").decode(),
                orjson.loads(record.value() or b"null"),
            )
            for record in batch
        ]
        if not batch:
            await source.wait_for_records(0.2)
    await source.close()
    return seen


def test_pulsar_in_insights_out_and_every_agent_matches(
    pulsar_broker: EmbeddedPulsar, start_instance: Callable[..., Instance]
) -> None:
    app = "e2e-pulsar"
    url = pulsar_broker.service_url
    events = readings(4_000, 200, seed=5)
    config = pulsar_towers_config(app, url)
    instance = start_instance(config, ready=False)
    asyncio.run(_produce(url, f"{app}-readings", events))
    instance.wait_ready()
    wait_until(lambda: instance.metric("swimstream_records_in_total") >= len(events), 60, "records")
    latest = {e["device"]: e for e in events}
    for device, event in latest.items():
        expected = {"temp": event["temp"], "tower": event["tower"], "ts": event["ts"]}
        wait_until(
            lambda d=device, e=expected: instance.lane(f"/device/{d}", "status") == e, 20, device
        )
        assert instance.lane(f"/device/{device}", "readings") == sum(
            1 for e in events if e["device"] == device
        )
    hot = [
        (
            e["device"],
            f"/device/{e['device']}",
            {"device": e["device"], "temp": e["temp"], "tower": e["tower"]},
        )
        for e in events
        if e["temp"] > HOT_TEMPERATURE
    ]
    alerts = asyncio.run(_read(url, f"{app}-alerts", len(hot)))
    assert sorted(alerts, key=canonical) == sorted(hot, key=canonical)


async def _produce_entries(url: str, topic: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    sink = PulsarSink(url, settings=PULSAR_LITE_SETTINGS)
    await sink.open()
    for key, event in events:
        sink.produce(topic, key.encode(), orjson.dumps(event))
    assert await sink.flush(30)
    await sink.close()


def test_durable_state_from_a_pulsar_source_survives_a_rebuild_from_the_changelog(
    kafka_broker: EmbeddedKafka,
    pulsar_broker: EmbeddedPulsar,
    start_instance: Callable[..., Instance],
    tmp_path: Path,
) -> None:
    """A Pulsar source with durable state (the changelog on Kafka): its messages are
    acknowledged once a checkpoint holds them, so the changelog is their only copy. A
    restart without the local store (a new machine) must rebuild that state; recovery
    used to check the Pulsar source's local offsets against the Kafka group, find none
    and discard every checkpoint."""
    app = "pulsar-durable"
    url = pulsar_broker.service_url
    events = entries(0, 600, accounts=20)
    config = {
        "app": app,
        "broker": {
            "kind": "kafka",
            "bootstrap": kafka_broker.bootstrap,
            "service_url": url,
            "subscription_type": "shared",
            "partitions": 2,
        },
        "agents": {"account": {"class": "integration.apps:Ledger", "route": "/account/:id"}},
        "sources": [
            {
                "topic": f"{app}-entries",
                "route": "/account/{key}",
                "lane": "entry",
                "kind": "pulsar",
            }
        ],
        "sinks": [{"publish": "processed", "topic": f"{app}.processed"}],
        "processing": {"guarantee": "at-least-once", "commit_interval": 0.1},
        "mesh": {"listen": "127.0.0.1:0", "instance_id": f"{app}-1"},
    }
    first = start_instance(config)
    asyncio.run(_produce_entries(url, f"{app}-entries", events))
    counts = Counter(key for key, _ in events)
    wait_until(lambda: first.metric("swimstream_records_in_total") >= len(events), 60, "records")
    for account, count in counts.items():
        wait_until(
            lambda a=account, c=count: first.lane(f"/account/{a}", "count") == c, 20, account
        )
    first.signal(signal.SIGTERM)
    assert first.wait_exit(15) == 0
    shutil.rmtree(tmp_path / "data")  # the local store is gone: the changelog must serve
    second = start_instance(config, name="rebuilt")
    for account, count in counts.items():
        assert second.lane(f"/account/{account}", "count") == count, account
    # From the changelog alone: every message was acknowledged, none came again (which
    # would rebuild the same counts even if recovery had thrown the checkpoints away).
    time.sleep(1.0)
    assert second.metric("swimstream_records_in_total") == 0
    restored = [line for line in second.log_path.read_text().splitlines() if "restored " in line]
    assert restored and "0 changelog records read" not in restored[0], restored


def _accounts(
    app: str, url: str, agent: str, lane: str, processing: Any = "at-least-once"
) -> dict[str, Any]:
    """A config of one ``integration.apps`` agent per account, fed by ``<app>-entries``
    and publishing to ``<app>-processed``, on the Pulsar broker at ``url``."""
    return {
        "app": app,
        "broker": {"kind": "pulsar", "service_url": url, "subscription_type": "shared"},
        "agents": {"account": {"class": f"integration.apps:{agent}", "route": "/account/:id"}},
        "sources": [{"topic": f"{app}-entries", "route": "/account/{key}", "lane": lane}],
        "sinks": [{"publish": "processed", "topic": f"{app}-processed"}],
        "processing": processing,
    }


def test_sigterm_while_the_broker_is_frozen_exits_0_within_the_drain(
    start_instance: Callable[..., Instance],
) -> None:
    """The drain's deadline holds while the Pulsar broker does not answer. Consumers and
    producers used to close one after another, each waiting the client's 10 s for the
    broker, and the sink flushed again for its own 10 s: 24 s to exit, 34 s and exit 1
    with an insight in flight, which `docker stop` cuts short with SIGKILL at 10 s. The
    insight in flight fails at the close; its record is not committed (a command here:
    its sender got no answer it could take for done), so the stop is not a failure."""
    app = "pulsar-frozen-stop"
    with EmbeddedPulsar() as broker:
        url = broker.service_url
        processing = {"guarantee": "at-least-once", "drain_timeout": "4s"}
        instance = start_instance(_accounts(app, url, "Ledger", "entry", processing))
        asyncio.run(_produce_entries(url, f"{app}-entries", entries(0, 100, accounts=5)))
        wait_until(lambda: instance.metric("swimstream_records_in_total") >= 100, 30, "records")
        wait_until(lambda: instance.metric("swimstream_insights_out_total") >= 100, 30, "insights")
        broker.pause()
        try:
            assert instance.request("POST", "/account/a?lane=entry", {"seq": 100})[0] == 200
            began = time.monotonic()
            instance.signal(signal.SIGTERM)
            try:
                code = instance.wait_exit(30)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"no exit 30 s after SIGTERM:\n{instance.log_tail()}"
                ) from None
            took = time.monotonic() - began
        finally:
            broker.resume()
        print(f"exit {code} after {took:.1f} s")
        assert code == 0, instance.log_tail()
        # The 4 s drain and the exit, on a busy machine; `docker stop` allows 10 s.
        assert took < 9.5, instance.log_tail()
        log = instance.log_path.read_text()
        assert "not delivered by the drain deadline" in log
        # The closes the frozen broker never answers are left behind, and their threads
        # call back later: the process ends without the interpreter's shutdown, where
        # such a callback crashed it (exit -11 after "stopped", once in six runs).
        assert "did not finish within" in log and "left behind" in log
        assert "exiting at once after the stop" in log


def test_a_burst_of_insights_to_a_frozen_broker_holds_no_request_up(
    start_instance: Callable[..., Instance],
) -> None:
    """A callback publishing more insights than a topic's producer queue takes
    (``max_pending_messages``, 10,000) while the broker was frozen blocked the event
    loop in the producer: the command got no answer, nor did ``/healthz``, until the
    queued insights timed out 30 s later and the instance stopped (exit 1). The sink
    now holds the rest back, and everything goes out once the broker answers again."""
    app = "pulsar-frozen-burst"
    count = 12_000
    with EmbeddedPulsar() as broker:
        url = broker.service_url
        instance = start_instance(_accounts(app, url, "Burst", "burst"))
        assert instance.request("POST", "/account/a?lane=burst", 1)[0] == 200
        assert len(asyncio.run(_read(url, f"{app}-processed", 1))) == 1  # (its producer made)
        broker.pause()
        try:
            status, body = instance.request("POST", "/account/a?lane=burst", count)
            assert status == 200, (status, body, instance.log_tail())
            assert instance.request("GET", "/healthz")[0] == 200, instance.log_tail()
        finally:
            broker.resume()
        insights = asyncio.run(_read(url, f"{app}-processed", 1 + count))
        assert sorted(value["seq"] for _, _, value in insights) == sorted([0, *range(count)])
        assert instance.metric("swimstream_insight_delivery_failures_total") == 0
        instance._check_alive()


def test_a_broker_frozen_longer_than_the_pulsar_client_s_send_timeout_is_ridden_out(
    start_instance: Callable[..., Instance],
) -> None:
    """An insight in flight while the broker was frozen failed after the Pulsar client's
    30 s, and the instance stopped (exit 1) where a Kafka instance waits 300 s: the sink
    now waits as long as Kafka's does, and the insight arrives after the thaw."""
    app = "pulsar-long-freeze"
    with EmbeddedPulsar() as broker:
        url = broker.service_url
        instance = start_instance(_accounts(app, url, "Ledger", "entry"))
        assert instance.request("POST", "/account/a?lane=entry", {"seq": 0})[0] == 200
        wait_until(lambda: instance.metric("swimstream_insights_out_total") >= 1, 30, "insight")
        broker.pause()
        try:
            status, _ = instance.request("POST", "/account/a?lane=entry", {"seq": 1})
            assert status == 200, instance.log_tail()
            time.sleep(35.0)  # past the client's own send timeout of 30 s
            instance._check_alive()
        finally:
            broker.resume()
        insights = asyncio.run(_read(url, f"{app}-processed", 2))
        assert sorted(value["seq"] for _, _, value in insights) == [0, 1]
        assert instance.metric("swimstream_insight_delivery_failures_total") == 0
        instance._check_alive()
