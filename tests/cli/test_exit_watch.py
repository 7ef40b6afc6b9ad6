"""The process ends soon after the service stopped, whatever native threads still wait.

A process that had logged "stopped" once hung past `docker stop`'s 10 s: `asyncio.run`
waits at its end for its executor's threads, and a broker client's call that the
frozen broker never answered held one (integration/test_pulsar_service.py, the SIGTERM
while the broker is frozen, in a full run)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

A_STUCK_THREAD_AT_THE_END = textwrap.dedent(
    """
    import asyncio, time
    from swimstream.cli.exit_watch import exit_anyway_after

    async def serve() -> int:
        # A call into a client that never returns, left behind at the drain's deadline.
        stuck = asyncio.ensure_future(asyncio.to_thread(time.sleep, 60))
        await asyncio.sleep(0.05)
        stuck.cancel()
        exit_anyway_after(0.5, 3)
        return 3

    raise SystemExit(asyncio.run(serve()))
    """
)


def test_a_thread_stuck_in_a_call_does_not_hold_the_exit_past_the_grace() -> None:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", A_STUCK_THREAD_AT_THE_END],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    took = time.monotonic() - began
    assert done.returncode == 3, done.stderr
    assert took < 20, f"took {took:.1f} s: the stuck thread held the exit"
