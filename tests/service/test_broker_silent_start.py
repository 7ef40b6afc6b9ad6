"""A broker that goes silent during the start, after the clients connected, is waited
for as one silent before they connect is: the start goes on once it answers again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connectors.embedded import EmbeddedKafka
from connectors.factory import open_connectors
from swimstream.config import parse_config
from swimstream.errors import BrokerError
from swimstream.service import Service
from tests.service.freezes import (
    Freeze,
    at_committed_offsets,
    at_once,
    at_source_open,
    at_topic_leaders,
    connectors_frozen_by,
)
from tests.service.test_lifecycle_lines import one_topic_app, service_lines
from tests.support.kafka import committed_offsets, produce_json
from tests.support.waiting import wait_until

READING = {"device": "d0", "tower": "t0", "temp": 20.0, "ts": 1}


async def started_after_a_silence(
    kafka_broker: EmbeddedKafka,
    document: dict[str, Any],
    freeze: Freeze,
    step: str,
    caplog: pytest.LogCaptureFixture,
) -> Service:
    """Run the app with the broker frozen by ``freeze`` (given the opened clients) until
    the start says it waits for it in ``step``; then resume it, and check the instance
    starts, reads a record and exits cleanly at the stop."""
    app = document["app"]
    document["processing"] = {"drain_timeout": "5s", "commit_interval": "200ms"}
    config = parse_config(document, {})
    service = Service(config, connectors_frozen_by(freeze))
    waiting = f"), {step}: "
    try:
        with caplog.at_level(logging.INFO):
            running = asyncio.create_task(service.run())
            await wait_until(
                lambda: running.done() or any(waiting in line for line in service_lines(caplog)),
                90,
                what=f"a line saying the start waits for the broker, {step}",
            )
            assert not running.done(), running.exception()  # (the start failed: exit 1)
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://{config.web.listen}/readyz") as response,
            ):
                assert response.status == 503
                said = (await response.json())["checks"].get("start", "")
            assert said.startswith(f"{step}: waiting for the broker ("), said
            [line, *_] = [r for r in caplog.records if waiting in r.getMessage()]
            assert getattr(line, "broker", None) == kafka_broker.bootstrap  # (its field)
            kafka_broker.resume()
            await wait_until(lambda: bool(service.started_at) or running.done(), 120)
            assert not running.done(), running.exception()
            await wait_until(lambda: service.runners[0].ready, 60, what="the source ready")
            produce_json(kafka_broker.bootstrap, f"{app}.readings", [(b"d0", READING)])
            await wait_until(
                lambda: (
                    committed_offsets(kafka_broker.bootstrap, app, f"{app}.readings", 1) == {0: 1}
                ),
                60,
                what="the record read and committed",
            )
            service.stop()
            await asyncio.wait_for(running, 60)
    finally:
        kafka_broker.resume()
        if not running.done():
            service.stop()
            await asyncio.wait_for(running, 60)
    assert service.failure is None
    return service


async def test_a_broker_silent_while_the_topics_are_checked_is_waited_for(
    kafka_broker: EmbeddedKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """Frozen once the clients connected, the broker left the topic step's requests
    unanswered: the start failed at the admin's 30 s timeout (exit 1)."""
    document = one_topic_app(kafka_broker.bootstrap, "silent-topics")
    await started_after_a_silence(
        kafka_broker, document, at_once(kafka_broker), "checking the topics", caplog
    )


async def test_a_broker_silent_while_restoring_is_waited_for(
    kafka_broker: EmbeddedKafka, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Frozen as the restore asked for the group's committed offsets: the start failed
    at the consumer's 10 s timeout (exit 1)."""
    document = one_topic_app(kafka_broker.bootstrap, "silent-restore")
    document["store"] = {"path": str(tmp_path)}
    await started_after_a_silence(
        kafka_broker,
        document,
        at_committed_offsets(kafka_broker),
        "restoring state from the changelog",
        caplog,
    )


async def test_a_broker_silent_while_the_source_opens_is_waited_for(
    kafka_broker: EmbeddedKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """Frozen as the source was made: its open's metadata request went unanswered and
    the start failed at the 10 s metadata timeout (exit 1)."""
    document = one_topic_app(kafka_broker.bootstrap, "silent-source")
    await started_after_a_silence(
        kafka_broker, document, at_source_open(kafka_broker), "opening the kafka source", caplog
    )


async def test_a_broker_silent_once_the_topics_are_created_is_waited_for(
    kafka_broker: EmbeddedKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """Frozen just after it created the topics, while the admin waited for their
    partitions' leaders: that wait's end (30 s) was taken as a failure waiting would not
    mend, and the start failed (exit 1)."""
    document = one_topic_app(kafka_broker.bootstrap, "silent-created")
    await started_after_a_silence(
        kafka_broker, document, at_topic_leaders(kafka_broker), "checking the topics", caplog
    )


async def test_a_stop_while_the_restore_waits_for_a_silent_broker_ends_the_start(
    kafka_broker: EmbeddedKafka, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM while the restore step waits between two tries: the start ends at once
    (exit 0), the store closed and its lock released for the next start."""
    document = one_topic_app(kafka_broker.bootstrap, "silent-stop")
    document["store"] = {"path": str(tmp_path)}
    document["processing"] = {"drain_timeout": "2s"}
    config = parse_config(document, {})
    freezing = connectors_frozen_by(at_committed_offsets(kafka_broker))
    service = Service(config, freezing)
    try:
        with caplog.at_level(logging.INFO):
            running = asyncio.create_task(service.run())
            await wait_until(
                lambda: (
                    running.done()
                    or any(
                        "), restoring state from the changelog: " in line
                        for line in service_lines(caplog)
                    )
                ),
                60,
                what="the restore waiting for the broker",
            )
            assert not running.done(), running.exception()
            service.stop()
            await asyncio.wait_for(running, 30)
    finally:
        kafka_broker.resume()
    assert service.failure is None
    assert "stopping before the start finished" in service_lines(caplog)
    assert service.durability is not None
    service.durability._lock.acquire()  # (released: a next start may take it)
    service.durability._lock.release()


async def test_a_missing_topic_not_to_be_created_still_stops_the_start_at_once(
    kafka_broker: EmbeddedKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """What waiting does not mend is not waited for: the topic step's refusal ends the
    start with the reason, and no line says it waits."""
    document = one_topic_app(kafka_broker.bootstrap, "silent-missing")
    document["broker"]["create_topics"] = False
    service = Service(parse_config(document, {}), open_connectors)
    with (
        caplog.at_level(logging.INFO),
        pytest.raises(BrokerError, match="do not exist") as failed,
    ):
        await asyncio.wait_for(service.run(), 60)
    assert not failed.value.unreachable
    assert not [line for line in service_lines(caplog) if "waiting for the broker" in line]
