"""The Kafka clients and the config refuse the same settings, so ``swimstream check``
reports every setting that ``swimstream run`` would stop at."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.kafka import KafkaAdmin, KafkaSink, KafkaSource
from connectors.kafka.settings import ADMIN_OWNED, CONSUMER_OWNED, PRODUCER_OWNED
from swimstream.errors import ConfigError
from tests.config.documents import document, problems

EVERY_OWNED = sorted(CONSUMER_OWNED | PRODUCER_OWNED | ADMIN_OWNED)


@pytest.mark.parametrize("name", EVERY_OWNED)
def test_the_config_refuses_every_setting_a_client_refuses(name: str) -> None:
    lines = problems(document(broker={"bootstrap": "h:1", "settings": {name: "x"}}))
    assert len(lines) == 1
    assert lines[0].startswith(f"broker.settings[{name!r}]: set by swimstream "), lines


@pytest.mark.parametrize(
    ("owned", "build"),
    [
        (CONSUMER_OWNED, lambda name: KafkaSource("127.0.0.1:9", "g", ["t"], settings={name: 1})),
        (PRODUCER_OWNED, lambda name: KafkaSink("127.0.0.1:9", settings={name: 1})),
        (ADMIN_OWNED, lambda name: KafkaAdmin("127.0.0.1:9", {name: 1})),
    ],
    ids=["source", "sink", "admin"],
)
def test_each_client_refuses_its_owned_settings(
    owned: frozenset[str], build: Callable[[str], object]
) -> None:
    for name in owned:
        with pytest.raises(ConfigError) as raised:
            build(name)
        assert [path for path, _ in raised.value.problems] == [f"settings[{name!r}]"]


def test_the_sink_refuses_the_partitioner_even_when_none_is_chosen() -> None:
    with pytest.raises(ConfigError, match="partitioner"):
        KafkaSink("127.0.0.1:9", settings={"partitioner": "random"})
