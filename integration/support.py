"""Real instances for integration tests: ``python -m swimstream run`` as a child process.

Each instance gets its own config file, a free web port and a log file; tests talk to
it the way users do, over HTTP (lanes, health, metrics) and through the broker's topics.
Its Kafka consumers join with a 6 s session (:data:`tests.support.kafka.TANSU_SESSION`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from connectors.embedded import free_ports
from tests.support.kafka import TANSU_SESSION

REPO = Path(__file__).resolve().parent.parent


class Instance:
    """One swimstream process running an app config."""

    _terminated = False  # SIGTERM sent (by terminate or stop)

    def __init__(self, config: dict[str, Any], workdir: Path, name: str = "instance") -> None:
        self.name = name
        self.web_port = free_ports(1)[0]
        config = {
            **config,
            "web": {**config.get("web", {}), "listen": f"127.0.0.1:{self.web_port}"},
        }
        broker = config.get("broker", {})
        if broker.get("kind") == "kafka":
            # Tansu holds every group join for half the session: 3 s instead of the
            # service's default 5 s at every start and rebalance, as `kind: embedded` does.
            settings = {**TANSU_SESSION, **broker.get("settings", {})}
            config["broker"] = {**broker, "settings": settings}
        config.setdefault("mesh", {"listen": f"127.0.0.1:{free_ports(1)[0]}"})
        # The test's own store, never the checkout's ./data (a store left by an earlier
        # run on another broker would be read as this app's state).
        config["store"] = {"path": str(workdir / "data"), **config.get("store", {})}
        self.config = config
        self.workdir = workdir
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> Instance:
        """Launch the process (not yet waiting for it to be ready). An instance stopped
        before may be started again: its new process gets its own SIGTERM at the next
        stop (the flag stayed set, and every later stop killed the process after 15 s)."""
        self._terminated = False
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "swimstream",
                "run",
                "--config",
                str(self.config_path),
                "--log-format",
                "json",
                "--log-level",
                os.environ.get("SWIMSTREAM_TEST_LOG_LEVEL", "info"),  # debug to hunt a flake
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> Instance:
        """Block until /readyz answers 200; fail with the log's tail if it dies first."""
        deadline = time.monotonic() + timeout
        body: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            status, body = self.request("GET", "/readyz")
            if status == 200:
                return self
            time.sleep(0.2)
        raise AssertionError(
            f"{self.name} not ready after {timeout}s: /readyz said {body}\n{self.log_tail()}"
        )

    def wait_serving(self, timeout: float = 60.0) -> Instance:
        """Block until the full web server answers (recovery done), whatever /readyz
        says: an instance with a backlog is ready only once it has read it. (While it
        starts, the port answers probes naming the start step.)"""
        deadline = time.monotonic() + timeout
        while not self._serving():
            self._check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not serving after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def _serving(self) -> bool:
        status, body = self.request("GET", "/healthz")
        starting = isinstance(body, dict) and "start" in body.get("checks", {})
        return status != 0 and not starting

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON or text) of one HTTP request; (0, None) if refused."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, _decode(response.read(), response.headers)
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read(), error.headers)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None

    def lane(self, node: str, lane: str) -> Any:
        """A lane's state over HTTP (asserting 200)."""
        status, body = self.request("GET", f"{node}?lane={urllib.parse.quote(lane)}")
        assert status == 200, (status, body)
        return body

    def metrics(self) -> dict[str, float]:
        """/metrics parsed: ``name{labels}`` -> value."""
        status, text = self.request("GET", "/metrics")
        assert status == 200, status
        samples = {}
        for line in str(text).splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def metric(self, name: str) -> float:
        """The sum of a metric over its label sets."""
        return sum(v for k, v in self.metrics().items() if k == name or k.startswith(name + "{"))

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM) if it still runs, without waiting for it."""
        if self.process is not None and self.process.poll() is None and not self._terminated:
            self.process.terminate()
            self._terminated = True

    def stop(self) -> None:
        """Terminate (then kill) if still running."""
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}"
            )


def json_value(message: Any) -> Any:
    """A consumed record's value, decoded as JSON."""
    value = message.value()
    assert value is not None, "a record without a value"
    return json.loads(value)


def key_text(message: Any) -> str:
    """A consumed record's key as text."""
    key = message.key()
    assert isinstance(key, bytes), "a record without a key"
    return key.decode()


def header_text(message: Any, name: str) -> str:
    """One header of a consumed record as text."""
    for header, value in message.headers() or ():
        if header == name:
            return bytes(value).decode()
    raise AssertionError(f"no header {name!r} in {message.headers()}")


def _decode(raw: bytes, headers: Any) -> Any:
    if "json" in (headers.get("Content-Type") or ""):
        return json.loads(raw)
    return raw.decode(errors="replace")


def wait_until(
    predicate: Any, timeout: float, what: str | Callable[[], str], interval: float = 0.2
) -> None:
    """Poll ``predicate()`` until true; fail naming ``what`` (or what ``what()`` says
    then: the state the predicate last saw, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    said = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout}s waiting for {said}")
