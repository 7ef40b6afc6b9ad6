"""``swimstream run`` failing for reasons outside the config file: one line, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cli.test_check import GOOD, swimstream


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
