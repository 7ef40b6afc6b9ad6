"""The connector factory against the session's real broker: what the service's clients
are made of."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka
from connectors.factory import open_connectors
from connectors.kafka import KafkaSource
from swimstream.config import parse_config
from tests.config.documents import document


def _config(kafka: EmbeddedKafka, **broker: Any) -> Any:
    return parse_config(
        document(broker={"kind": "kafka", "bootstrap": kafka.bootstrap, **broker}), {}
    )


@pytest.mark.parametrize(("static", "expected"), [(None, "edge-1"), (False, None)])
async def test_sources_join_as_static_members_unless_told_otherwise(
    kafka_broker: EmbeddedKafka, static: bool | None, expected: str | None
) -> None:
    config = _config(kafka_broker, **({} if static is None else {"static_membership": static}))
    async with open_connectors(config, "edge-1") as clients:
        source = clients["kafka"].make_source(["vehicle-positions"])
    assert isinstance(source, KafkaSource)
    assert source.instance_id == expected
