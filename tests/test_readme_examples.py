"""The README's examples work as written: its agents and their test, its secured broker,
and the lanes, errors and test helpers it names are there to import.

Each is read from README.md itself, so an edit there that breaks one fails here rather
than in the hands of the first user who pastes it.
"""

from __future__ import annotations

import asyncio
import builtins
import re
from pathlib import Path
from typing import Any

import yaml

import swimstream
import swimstream.testing
from connectors.kafka.settings_check import librdkafka_problems
from swimstream.config.loader import check_config

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def code_block(language: str, opening: str) -> str:
    """The README's one ``language`` block that opens with ``opening``."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.S | re.M)
    found = [block for block in blocks if block.startswith(opening)]
    assert len(found) == 1, f"README.md has {len(found)} {language} blocks opening {opening!r}"
    return str(found[0])


async def test_the_api_example_passes_the_test_the_readme_writes_for_it() -> None:
    agents = code_block("python", "from swimstream import Agent")
    test = code_block("python", "from swimstream.testing import open_plane")
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(agents + "\n\n" + test, str(README), "exec"), namespace)
    await namespace["test_alerts"]()


def test_the_secured_broker_example_passes_check(tmp_path: Path) -> None:
    broker = yaml.safe_load(code_block("yaml", "broker:\n  bootstrap:"))
    document = yaml.safe_load((ROOT / "config" / "towers.yaml").read_text())
    document["broker"] = broker["broker"]
    path = tmp_path / "secured.yaml"
    path.write_text(yaml.safe_dump(document))
    env = {"KAFKA_BOOTSTRAP": "SASL_SSL://host:9093", "KAFKA_USER": "u", "KAFKA_PASSWORD": "p"}
    assert check_config(path, env, librdkafka_problems) == []


def test_the_secured_pulsar_example_passes_check(tmp_path: Path) -> None:
    broker = yaml.safe_load(code_block("yaml", "broker:\n  kind: pulsar"))
    document = yaml.safe_load((ROOT / "config" / "towers.yaml").read_text())
    document["broker"] = broker["broker"]
    document["processing"] = "at-least-once"  # (exactly-once is Kafka's)
    path = tmp_path / "secured.yaml"
    path.write_text(yaml.safe_dump(document))
    assert check_config(path, {"PULSAR_TOKEN": "t"}, librdkafka_problems) == []


def test_the_lanes_and_errors_the_readme_names_are_importable_from_swimstream() -> None:
    named = set(re.findall(r"`([A-Z][A-Za-z]*(?:Lane|Error))`", README.read_text()))
    ours = {n for n in named if not hasattr(builtins, n) and not hasattr(asyncio, n)}
    assert ours and ours <= set(swimstream.__all__), ours - set(swimstream.__all__)


def test_the_test_helpers_the_readme_names_are_importable_from_swimstream_testing() -> None:
    section = README.read_text().split("`swimstream.testing` also has", 1)[1].split("\n\n")[0]
    named = set(re.findall(r"`([A-Z][A-Za-z]+)`", section))
    assert named and named <= set(swimstream.testing.__all__), named
