"""``swimstream run`` failing for reasons outside the config file: one line, no traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_check import GOOD, REPO, swimstream


def run_on_a_taken_port(tmp_path: Path, log_format: str) -> tuple[int, str]:
    """The port another process listens on, and ``run``'s stderr with it as web port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "app.yaml"
        config.write_text(GOOD + f'web: {{listen: "127.0.0.1:{port}"}}\n')
        result = swimstream("run", "--config", str(config), "--log-format", log_format)
    assert result.returncode == 1, result.stderr
    return port, result.stderr


def test_a_web_port_in_use_is_one_line_naming_web_listen(tmp_path: Path) -> None:
    port, stderr = run_on_a_taken_port(tmp_path, "text")
    assert f"swimstream: web.listen: cannot listen on 127.0.0.1:{port}" in stderr
    assert stderr.rstrip().endswith(
        "address already in use (another process listens there: set web.listen to a free port)"
    ), stderr
    assert "Traceback" not in stderr, stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--devices", "0"], "argument --devices: 0 is not above zero"),
        (["demo", "--rate", "-10"], "argument --rate: -10 is not above zero"),
        (["demo", "--duration", "-5"], "argument --duration: -5 is not a number above zero"),
        (["demo", "--duration", "soon"], "argument --duration: 'soon' is not a number"),
        (
            ["demo", "--web", "nope"],
            "argument --web: expected host:port, such as 127.0.0.1:9001, got 'nope'",
        ),
        (
            ["demo", "--web", "127.0.0.1:99999"],
            "argument --web: expected host:port, such as 127.0.0.1:9001, got '127.0.0.1:99999'",
        ),
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


def json_records(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_config_errors_at_run_are_logged_as_errors_keyed_by_path_in_json(
    tmp_path: Path,
) -> None:
    """A JSON log pipeline got only a misleading "stopped" record; the problem itself
    was a plain line it could not parse."""
    config = tmp_path / "app.yaml"
    config.write_text(GOOD.replace("lane: reading", "lane: readin"))
    result = swimstream("run", "--config", str(config), "--log-format", "json")
    assert result.returncode == 2, result.stderr
    records = json_records(result.stderr)
    [error] = [r for r in records if r["level"] == "error"]
    assert error["key"] == "sources[0].lane" and error["config"] == str(config), error
    assert "'readin'" in error["message"], error
    assert "stopped" not in [r["message"] for r in records], records
    assert f"swimstream: {config}: sources[0].lane: " in result.stderr  # for people, too


def test_a_web_port_in_use_is_an_error_record_and_nothing_says_stopped(tmp_path: Path) -> None:
    port, stderr = run_on_a_taken_port(tmp_path, "json")
    records = json_records(stderr)
    [error] = [r["message"] for r in records if r["level"] == "error"]
    assert error.startswith(f"web.listen: cannot listen on 127.0.0.1:{port}"), error
    assert "stopped" not in [r["message"] for r in records], records
