"""An embedded broker that dies stops the demo (and any instance that started it):
nothing starts it again, so waiting for it would be a stall with no end. So does a
simulator that gave up on a broker that stopped answering."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from tests.cli.test_check import REPO


def started_demo(*args: str) -> tuple[subprocess.Popen[str], int]:
    """``swimstream demo`` with ``args``, once it printed a status line (its own
    producer open), and the process id of its embedded broker."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "swimstream", "demo", "--web", "127.0.0.1:0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if "waiting for the broker to assign" in line or " insights " in line:
                break
        else:
            raise AssertionError(f"the demo did not start: {demo.wait(60)}")
        [broker] = subprocess.run(
            ["pgrep", "-P", str(demo.pid), "-f", "tansu"], capture_output=True, text=True
        ).stdout.split()
    except BaseException:
        demo.kill()
        demo.wait()
        raise
    return demo, int(broker)


def test_the_demo_stops_with_exit_1_naming_its_broker_once_the_broker_died() -> None:
    """The demo printed "waiting for the broker to assign the readings partitions
    (about 3 s with the embedded broker)" every second after its Tansu was killed (the
    OOM killer, say), until --duration or Ctrl-C, and then blamed its simulator's
    producer queue ("is the broker reachable?")."""
    demo, broker = started_demo("--duration", "90")
    try:
        os.kill(broker, signal.SIGKILL)
        _out, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 1, err[-2000:]
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("swimstream: stopped after a failure: embedded Kafka (Tansu) on "), last
    assert "died (exit code -9)" in last and "nothing starts it again" in last, last
    # (The simulator's readings were not waited for 10 s before the drain began.)
    assert "not acknowledged after 10 s" not in err, err[-2000:]


def test_the_demo_ends_naming_why_once_its_simulator_failed() -> None:
    """With the broker frozen, the simulator's producer queue stays full and the
    simulator gives up (after 10 s): the demo went on printing lines of nothing read,
    even once the broker answered again, and said why only at --duration or Ctrl-C."""
    demo, broker = started_demo("--duration", "600", "--rate", "100000")
    try:
        os.killpg(broker, signal.SIGSTOP)  # (Tansu leads its own process group)
        _out, err = demo.communicate(timeout=180)  # (ran until --duration before)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if broker:  # (the demo stops it as it ends; killed, it left it running)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(broker, signal.SIGKILL)
    assert demo.returncode == 1, err[-2000:]
    last = err.rstrip().splitlines()[-1]
    assert "the producer queue stayed full for 10 s" in last, last
