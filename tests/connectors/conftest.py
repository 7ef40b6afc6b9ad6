"""Fixtures for the connector tests: Kafka sources and sinks that close themselves, a
topic of each test's own, and the TLS certificates of a module's tests.

Sources use a 6 s session timeout because Tansu holds every group join for half of it
(see :mod:`connectors.embedded.kafka`): 3 s per join instead of 5 s with the default
10 s, which is most of what these tests spend waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

import pytest

from connectors.embedded import EmbeddedKafka, unique_topic_name
from connectors.kafka import KafkaSink, KafkaSource
from connectors.kafka.settings import Settings
from swimstream.streams.connector import InboundRecord
from tests.support.certificates import Certificates, make_certificates
from tests.support.kafka import TANSU_SESSION

TEST_SOURCE_SETTINGS: dict[str, str | int | float | bool] = {**TANSU_SESSION}


class SourceFactory(Protocol):
    """Opens a KafkaSource on the session broker (the ``open_source`` fixture)."""

    async def __call__(
        self,
        topics: Sequence[str],
        group: str | None = None,
        *,
        instance_id: str | None = None,
        settings: Settings | None = None,
        revoke_timeout: float = 10.0,
    ) -> KafkaSource: ...


class SinkFactory(Protocol):
    """Opens a KafkaSink on the session broker (the ``open_sink`` fixture)."""

    async def __call__(
        self, *, settings: Settings | None = None, transactional_id: str | None = None
    ) -> KafkaSink: ...


def new_group() -> str:
    """A consumer group no other test uses."""
    return f"group-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def open_source(kafka_broker: EmbeddedKafka) -> AsyncIterator[SourceFactory]:
    """Opens sources; every one still open is closed after the test."""
    opened: list[KafkaSource] = []

    async def open_one(
        topics: Sequence[str],
        group: str | None = None,
        *,
        instance_id: str | None = None,
        settings: Settings | None = None,
        revoke_timeout: float = 10.0,
    ) -> KafkaSource:
        source = KafkaSource(
            kafka_broker.bootstrap,
            group or new_group(),
            topics,
            instance_id=instance_id,
            settings={**TEST_SOURCE_SETTINGS, **(settings or {})},
            revoke_timeout=revoke_timeout,
        )
        await source.open()
        opened.append(source)
        return source

    yield open_one
    for source in opened:
        await source.close()


@pytest.fixture
async def open_sink(kafka_broker: EmbeddedKafka) -> AsyncIterator[SinkFactory]:
    """Opens sinks; every one still open is closed after the test."""
    opened: list[KafkaSink] = []

    async def open_one(
        *, settings: Settings | None = None, transactional_id: str | None = None
    ) -> KafkaSink:
        sink = KafkaSink(
            kafka_broker.bootstrap, settings=settings, transactional_id=transactional_id
        )
        await sink.open()
        opened.append(sink)
        return sink

    yield open_one
    for sink in opened:
        await sink.close()


async def pump(
    source: KafkaSource,
    until: Callable[[list[InboundRecord]], bool],
    timeout: float = 20.0,
    batch: int = 500,
) -> list[InboundRecord]:
    """Consume the way the service does (consume, else wait) until ``until(records so
    far)`` holds; fails the test after ``timeout`` seconds."""
    records: list[InboundRecord] = []
    deadline = time.monotonic() + timeout
    while not until(records):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s with {len(records)} records")
        got = source.consume(batch)
        if got:
            records.extend(got)
            await asyncio.sleep(0)
        else:
            await source.wait_for_records(0.05)
    return records


@contextlib.asynccontextmanager
async def kept_polling(source: KafkaSource) -> AsyncIterator[None]:
    """Keep ``source`` consuming, as the service would, for the block's duration (a
    rebalance is served only in a fetch)."""
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            source.consume(100)
            await source.wait_for_records(0.05)

    polling = asyncio.create_task(poll())
    try:
        yield
    finally:
        stop.set()
        await polling


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses (on the session's brokers, which tests share)."""
    return unique_topic_name(request.node.name)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA and certificates made for the module's tests (see :mod:`tests.support.certificates`)."""
    return make_certificates(tmp_path_factory.mktemp("tls"))
