"""``swimstream inspect --node`` finds an agent however its URI is spelt.

Agents are stored under their node URI's one canonical spelling (``/sensor/aa%3Abb``
for ``/sensor/aa:bb``, as a MAC address reads), which HTTP and commands accept either
way; inspect looked up only the spelling given, and said ``not stored`` of an agent
whose state was there.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from swimstream.crdt import LWWRegister, encode_register
from swimstream.routing import RoutePattern
from swimstream.store.changelog import ChangelogEntry
from swimstream.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[2]


def inspect(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swimstream", "inspect", "--store", str(store), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("pattern", "value", "asked"),
    [
        ("/sensor/:mac", "aa:bb:cc", "/sensor/aa:bb:cc"),
        ("/sensor/:mac", "aa:bb:cc", "/sensor/aa%3abb%3acc"),  # (escapes in lower case)
        ("/site/:name/room/:room", "Zürich 1", "/site/Zürich 1/room/7"),
    ],
)
def test_inspect_finds_an_agent_by_another_spelling_of_its_uri(
    tmp_path: Path, pattern: str, value: str, asked: str
) -> None:
    route = RoutePattern.parse(pattern)
    params = {name: value for name in ("mac", "name")} | {"room": "7"}
    node = route.render(params)
    assert node != asked
    status = LWWRegister("r")
    status.set({"online": True})
    store = SQLiteStore(tmp_path / "s.sqlite").open()
    asyncio.run(store.write_async([ChangelogEntry(node, "status", encode_register(status), 0)], {}))
    store.close()
    result = inspect(tmp_path / "s.sqlite", "--node", asked)
    assert result.returncode == 0, result.stderr
    assert f'  {node}#status = {{"online": true}}' in result.stdout, result.stdout
    absent = inspect(tmp_path / "s.sqlite", "--node", "/sensor/dd:ee")
    assert absent.returncode == 0 and "  /sensor/dd:ee: not stored" in absent.stdout
