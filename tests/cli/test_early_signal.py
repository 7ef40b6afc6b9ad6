"""SIGTERM at any moment of ``swimstream run`` exits 0, as the README's table says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli.test_check import REPO


def test_sigterm_while_the_config_is_read_exits_0(tmp_path: Path) -> None:
    """Before the service handled SIGTERM (imports, reading the config: a second or so),
    the signal ended the process by its default action, exit status 143. The config is
    a named pipe here, so the signal comes while ``run`` reads it."""
    config = tmp_path / "app.yaml"
    os.mkfifo(config)
    run = subprocess.Popen(
        [sys.executable, "-m", "swimstream", "run", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with open(config, "w"):  # (returns once run opened it to read)
            run.send_signal(signal.SIGTERM)
            run.wait(60)
    finally:
        if run.poll() is None:
            run.kill()
    _out, err = run.communicate()
    assert run.returncode == 0, (run.returncode, err)
