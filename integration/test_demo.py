"""`make demo DURATION=...` wraps `swimstream demo --duration`: run it and watch it work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from integration.support import REPO


def test_the_demo_runs_serves_its_dashboard_shows_insights_and_exits_0(tmp_path: Path) -> None:
    log_path = tmp_path / "demo.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "swimstream",
            "demo",
            "--duration",
            "12",  # insights flow from about 5 s on: the group join takes 3
            "--web",
            "127.0.0.1:0",
            "--rate",
            "3000",
            "--log-format",
            "json",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    dashboard = None
    try:
        for line in process.stdout:
            lines.append(line.rstrip())
            found = re.search(r"dashboard: (http://\S+)", line)
            if found and dashboard is None:
                dashboard = found.group(1)
                with urllib.request.urlopen(dashboard + "/_routes", timeout=10) as response:
                    assert b"/device/:id" in response.read()
                with urllib.request.urlopen(dashboard + "/", timeout=10) as response:
                    assert b"swimstream" in response.read()
        assert process.wait(timeout=60) == 0, "\n".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    assert dashboard is not None, "\n".join(lines)
    insights = [
        int(m.group(1).replace(",", ""))
        for m in re.finditer(r"insights\s+([\d,]+)/s", "\n".join(lines))
    ]
    assert max(insights) > 0, "\n".join(lines)
    assert any("latest alert: device" in line for line in lines), "\n".join(lines)
    assert lines[-1] == "demo stopped"
    log_file.close()
    # (It set an address for the mesh, which is not built: a warning at every demo.)
    assert "has no effect yet" not in log_path.read_text()
