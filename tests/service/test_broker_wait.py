"""Waiting for the broker at start: each try is named, and a stop ends the wait at once,
even in the middle of a try that hangs."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from connectors.embedded import EmbeddedKafka
from connectors.factory import open_connectors
from swimstream.config import parse_config
from swimstream.service import Service
from tests.service.freezes import (
    at_committed_offsets,
    at_once,
    at_source_open,
    connectors_frozen_by,
    stopped_while_frozen,
)
from tests.service.test_lifecycle_lines import no_broker, one_topic_app, service_lines
from tests.support.waiting import wait_until


@pytest.fixture
def not_kafka() -> Iterator[str]:
    """A port that accepts TCP and never answers (a wrong port, a load balancer): the
    producer's metadata request waits its full 10 s there."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes the handshakes; nobody reads
        yield f"127.0.0.1:{listener.getsockname()[1]}"


async def test_a_stop_during_a_hung_try_ends_the_start_at_once(
    not_kafka: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM in the middle of a try took the rest of the client's 10 s timeout (the
    README promises exit at once; `docker stop` kills after 10 s), and the start said
    nothing until that try failed."""
    config = parse_config(one_topic_app(not_kafka, "hung-broker"), {})
    service = Service(config, open_connectors)
    with caplog.at_level(logging.INFO):
        running = asyncio.create_task(service.run())
        await wait_until(
            lambda: f"connecting to the broker at {not_kafka}" in service_lines(caplog),
            what="the line naming the try",
        )
        await asyncio.sleep(1.0)  # past the TCP check: the metadata request hangs now
        service.stop()
        began = time.monotonic()
        await asyncio.wait_for(running, 15)
        took = time.monotonic() - began
    assert took < 2.0, f"the stop took {took:.1f} s"
    assert not [line for line in service_lines(caplog) if "waiting for the broker" in line]


async def test_a_stop_while_the_embedded_broker_starts_leaves_no_broker_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cancelled try lets the broker's start finish, then stops it: a cancel alone
    would leave its process running, with nobody to stop it."""
    app = one_topic_app("127.0.0.1:9", "embedded-early")
    config = parse_config({**app, "broker": {"kind": "embedded", "partitions": 1}}, {})
    service = Service(config, open_connectors)
    with caplog.at_level(logging.INFO):
        running = asyncio.create_task(service.run())
        await wait_until(lambda: any("embedded" in line for line in service_lines(caplog)))
        service.stop()
        await asyncio.wait_for(running, 30)
    assert "starting the embedded Kafka broker and connecting to it" in service_lines(caplog)
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.embedded"]
    assert [line for line in lines if " ready on " in line], lines
    assert [line for line in lines if line.endswith(" stopped")], lines


async def test_readyz_counts_the_wait_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    """The seconds stood still at the last failed try: 14 s into the wait, /readyz said
    "7 s so far". Tries here fail at once, at 0, 1 and 3 s: asked at 2.2 s, it said 1 s."""
    config = parse_config(one_topic_app("127.0.0.1:9", "readyz-wait"), {})
    service = Service(config, no_broker)
    with caplog.at_level(logging.INFO):
        running = asyncio.create_task(service.run())
        try:
            await wait_until(
                lambda: any("waiting for the broker" in line for line in service_lines(caplog))
            )
            began = time.monotonic()
            await asyncio.sleep(2.2)  # between the second try and the third
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://{config.web.listen}/readyz") as response,
            ):
                step = (await response.json())["checks"]["start"]
            asked_at = time.monotonic() - began
        finally:
            service.stop()
            await asyncio.wait_for(running, 10)
    assert step.startswith("waiting for the broker ("), step
    seconds = int(step.removeprefix("waiting for the broker (").split(" ")[0])
    assert abs(seconds - asked_at) < 0.75, (step, asked_at)  # (whole seconds, rounded)


async def test_a_stop_while_the_topics_are_checked_on_a_frozen_broker_ends_the_start(
    kafka_broker: EmbeddedKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that stopped answering once the clients had connected held SIGTERM for
    the topic step's admin timeout (30 s), and the start then failed on it (exit 1)
    although the stop had come first."""
    document = one_topic_app(kafka_broker.bootstrap, "topics-frozen")
    document["processing"] = {"drain_timeout": "2s"}
    service = Service(parse_config(document, {}), connectors_frozen_by(at_once(kafka_broker)))
    # (half a second more: inside the topic step by then)
    await stopped_while_frozen(service, kafka_broker, caplog, settle=0.5)
    assert service.failure is None
    assert "stopping before the start finished" in service_lines(caplog)


async def test_a_stop_while_restoring_from_a_frozen_broker_ends_the_start(
    kafka_broker: EmbeddedKafka, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The restore asks the broker for the group's committed offsets, then reads the
    changelog: a broker that stopped answering there held SIGTERM for the consumer's
    10 s timeout, and the start then failed on it (exit 1), not the exit 0 at once the
    README promises while it restores."""
    document = one_topic_app(kafka_broker.bootstrap, "restore-frozen")
    document["store"] = {"path": str(tmp_path)}
    document["processing"] = {"drain_timeout": "2s"}
    freezing = connectors_frozen_by(at_committed_offsets(kafka_broker))
    service = Service(parse_config(document, {}), freezing)
    await stopped_while_frozen(service, kafka_broker, caplog)
    assert service.failure is None
    assert "stopping before the start finished" in service_lines(caplog)


async def test_a_stop_while_the_source_opens_on_a_frozen_broker_ends_the_start(
    kafka_broker: EmbeddedKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """The source checks its topics as it opens, the start's last broker request: a
    broker gone silent there held SIGTERM for the 10 s metadata timeout, and the start
    then failed on it (exit 1)."""
    document = one_topic_app(kafka_broker.bootstrap, "source-frozen")
    document["processing"] = {"drain_timeout": "2s"}
    freezing = connectors_frozen_by(at_source_open(kafka_broker))
    service = Service(parse_config(document, {}), freezing)
    await stopped_while_frozen(service, kafka_broker, caplog)
    assert service.failure is None
    assert "stopping before the start finished" in service_lines(caplog)
