"""The committed table of property scopes is the installed librdkafka's, and is read
from librdkafka's own table the way its CONFIGURATION.md lays it out."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.kafka import property_scopes
from connectors.kafka.property_table import current_module, parse_scopes, render_module

TABLE = """\
## Global configuration properties

Property            | C/P | Range         | Default | Importance | Description
--------------------|-----|---------------|--------:|------------| -----------
client.id           |  *  |               | rdkafka | low        | Client identifier.
fetch.wait.max.ms   |  C  | 0 .. 300000   |     500 | low        | Longest broker wait.
linger.ms           |  P  | 0 .. 900000   |       5 | high       | Batching delay.
compression.codec   |  P  | none, gzip    |    none | medium     | Compression codec.

## Topic configuration properties

Property            | C/P | Range         | Default | Importance | Description
--------------------|-----|---------------|--------:|------------| -----------
auto.offset.reset   |  C  | earliest, ... | largest | high       | Where to start.
compression.codec   |  C  | none, inherit | inherit | high       | (another scope)

### C/P legend: C = Consumer, P = Producer, * = both
"""


def test_global_and_topic_properties_are_read_with_their_scopes() -> None:
    assert parse_scopes(TABLE) == {
        "client.id": "*",
        "fetch.wait.max.ms": "C",
        "linger.ms": "P",
        "auto.offset.reset": "C",
        "compression.codec": "*",  # two scopes: passed to every client, as before
    }


def test_the_rendered_module_lists_the_single_scope_names_and_every_name() -> None:
    namespace: dict[str, object] = {}
    exec(render_module(parse_scopes(TABLE), "9.9.9"), namespace)
    assert namespace["CONSUMER_ONLY"] == {"auto.offset.reset", "fetch.wait.max.ms"}
    assert namespace["PRODUCER_ONLY"] == {"linger.ms"}
    assert namespace["KNOWN"] == set(parse_scopes(TABLE))  # every scope, for suggestions


def test_the_committed_table_is_the_installed_librdkafkas() -> None:
    current = current_module()
    if current is None:
        pytest.skip("librdkafka's property table cannot be read on this system")
    committed = Path(property_scopes.__file__).read_text()
    assert committed == current, "run scripts/kafka-property-scopes to regenerate it"
