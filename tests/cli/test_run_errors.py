"""``swimstream run`` failing for reasons outside the config file: one line, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_check import GOOD, REPO, swimstream


def test_a_web_port_in_use_is_one_line_naming_web_listen(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "app.yaml"
        config.write_text(GOOD + f'web: {{listen: "127.0.0.1:{port}"}}\n')
        result = swimstream("run", "--config", str(config), "--log-format", "text")
    assert result.returncode == 1, result.stderr
    assert f"swimstream: web.listen: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--devices", "0"], "argument --devices: 0 is not above zero"),
        (["demo", "--rate", "-10"], "argument --rate: -10 is not above zero"),
        (["demo", "--duration", "-5"], "argument --duration: -5 is not a number above zero"),
        (["demo", "--duration", "soon"], "argument --duration: 'soon' is not a number"),
    ],
)
def test_counts_and_durations_below_one_are_usage_errors(args: list[str], message: str) -> None:
    """(--devices 0 used to end in a traceback from deep inside the simulator.)"""
    result = swimstream(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_the_simulator_refuses_them_too() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.towers.simulator", "--devices", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--devices: 0 is not above zero" in result.stderr


def test_version() -> None:
    result = swimstream("--version")
    assert result.returncode == 0 and result.stdout.startswith("swimstream "), result
