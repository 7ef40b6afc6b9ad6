"""A real broker frozen (SIGSTOP) at one step of the service's start, once its clients
connected: the start tests' ways to make a broker go silent exactly there."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import pytest

from connectors.embedded._process import EmbeddedBroker
from connectors.factory import open_connectors
from connectors.kafka.admin import KafkaAdmin
from swimstream.config import AppConfig
from swimstream.service import ProtocolClients, Service
from swimstream.service.wiring import ConnectorFactory
from swimstream.streams import SourceConnector, TopicPartition
from tests.support.waiting import wait_until

Freeze = Callable[[dict[str, ProtocolClients]], None]
"""Given the opened clients, arranges for the broker to be frozen at some step."""


def connectors_frozen_by(freeze: Freeze) -> ConnectorFactory:
    """The service's connectors, with ``freeze`` applied to them once opened."""

    @asynccontextmanager
    async def freezing(
        config: AppConfig, instance_id: str
    ) -> AsyncIterator[dict[str, ProtocolClients]]:
        async with open_connectors(config, instance_id) as clients:
            freeze(clients)
            yield clients

    return freezing


def at_once(broker: EmbeddedBroker) -> Freeze:
    """Frozen as soon as the clients connected: the topic step goes unanswered."""
    return lambda _clients: broker.pause()


def at_committed_offsets(broker: EmbeddedBroker) -> Freeze:
    """Frozen as the restore first asks for the group's committed offsets."""

    def freeze(clients: dict[str, ProtocolClients]) -> None:
        reader = clients["kafka"].changelog
        assert reader is not None
        asked = reader.committed_offsets
        frozen = False

        async def committed_offsets(
            group: str, partitions: Sequence[TopicPartition]
        ) -> dict[TopicPartition, int]:
            nonlocal frozen
            if not frozen:
                frozen = True
                broker.pause()
            return await asked(group, partitions)

        reader.committed_offsets = committed_offsets  # type: ignore[method-assign]

    return freeze


def at_source_open(broker: EmbeddedBroker, protocol: str = "kafka") -> Freeze:
    """Frozen as the first source is made: its open's requests go unanswered."""

    def freeze(clients: dict[str, ProtocolClients]) -> None:
        chosen = clients[protocol]
        make_source = chosen.make_source
        frozen = False

        def frozen_source(topics: Sequence[str]) -> SourceConnector:
            nonlocal frozen
            if not frozen:
                frozen = True
                broker.pause()
            return make_source(topics)

        chosen.make_source = frozen_source

    return freeze


def at_topic_leaders(broker: EmbeddedBroker) -> Freeze:
    """Frozen once the topics are created, as the admin first looks for their leaders."""

    def freeze(clients: dict[str, ProtocolClients]) -> None:
        admin = clients["kafka"].admin
        assert isinstance(admin, KafkaAdmin)
        wait_for_leaders = admin._wait_for_leaders
        frozen = False

        def frozen_leaders(topics: Mapping[str, int]) -> None:
            nonlocal frozen
            if not frozen:
                frozen = True
                broker.pause()
            wait_for_leaders(topics)

        admin._wait_for_leaders = frozen_leaders  # type: ignore[method-assign]

    return freeze


async def stopped_while_frozen(
    service: Service,
    broker: EmbeddedBroker,
    caplog: pytest.LogCaptureFixture,
    settle: float = 0.0,
) -> None:
    """Run ``service`` until its broker is frozen (and ``settle`` seconds more, to be
    inside the step), stop it, and wait for its run to end; the broker resumed after."""
    try:
        with caplog.at_level(logging.INFO):
            running = asyncio.create_task(service.run())
            await wait_until(lambda: broker.is_paused, what="the broker frozen")
            await asyncio.sleep(settle)
            service.stop()
            await asyncio.wait_for(running, 60)  # (raised a client's timeout before)
    finally:
        broker.resume()
