"""The embedded Pulsar: the Pulsar-protocol broker shipped in the ``pulsar-lite`` wheel.

pulsar-lite is one Rust binary that speaks Pulsar's binary protocol over RocksDB, enough
for ``pulsar-client`` producers and consumers (Exclusive, Shared, Failover and
Key_Shared subscriptions) in tests and the demo. The wheel's own process manager is not
used: it shares one process per database path between callers by reference count, tries
ports from 6650 upward, prints to stdout and appends to ``/tmp/pulsar-lite.log``; a test
fixture wants one private broker it can freeze and kill. The binary is located with
the wheel's own finder (:func:`pulsar_lite.binary_finder.find_pulsar_lite_binary`).
The command line::

    pulsar-lite --config WORK/pulsar-lite.toml --addr 127.0.0.1:PORT \\
        --db-path WORK/data --log-level warn

with ``[metrics] addr = "127.0.0.1:METRICS_PORT"`` in the config file.

Measured quirks (pulsar-lite 0.2.0):

* Besides the Pulsar port it serves Prometheus metrics over HTTP, by default on
  ``0.0.0.0:8080``: every broker on all interfaces and on the same port. The config key
  ``[metrics] addr`` moves it to a free loopback port. There is no admin REST API; the
  HTTP port answers ``/metrics`` only (404 elsewhere).
* A config file that does not parse or has a wrongly typed value is ignored without a
  word (the defaults apply, metrics on 8080 included). Readiness therefore includes a
  GET of the metrics URL we configured, which proves the file was read.
* When the metrics port is taken it logs an error and keeps running; when the Pulsar
  port is taken it exits 1. Both are retried on fresh ports.
* At ``info`` it logs a line per acknowledged message, so the log level defaults to
  ``warn``; start-up failures are logged at ``error`` and still reach the log.
* The data lives in RocksDB under ``--db-path`` (it writes ``data.rocksdb`` and
  ``data.metadata.json`` beside the given path), removed with the work directory on
  a clean stop. SIGTERM ends it at once (exit status -15); it does not flush first.
* Start-up, from launch to a producer round trip: 0.025-0.06 s (20 starts, median
  0.03 s).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import pulsar  # type: ignore[import-untyped]  # pulsar-client ships no type information
from pulsar_lite.binary_finder import (  # type: ignore[import-untyped]  # no type information
    find_pulsar_lite_binary,
)

from connectors.embedded._process import HOST, EmbeddedBroker
from swimstream.errors import BrokerError

LogLevel = Literal["error", "warn", "info", "debug", "trace"]


class EmbeddedPulsar(EmbeddedBroker):
    """pulsar-lite serving the Pulsar protocol on a loopback port.

    Args:
        port: the Pulsar port; ``None`` picks a free one. The metrics port is always
            picked free.
        work_dir: where the log, the config and the RocksDB data go; kept after stop.
            ``None`` uses a temporary directory, removed on a clean stop.
        startup_timeout: seconds to wait for a producer round trip.
        stop_grace: seconds between SIGTERM and SIGKILL.
        log_level: the broker's log level (``info`` logs every acknowledgement).

    Example::

        with EmbeddedPulsar() as broker:
            client = pulsar.Client(broker.service_url)
    """

    title: ClassVar[str] = "embedded Pulsar (pulsar-lite)"
    _slug: ClassVar[str] = "pulsar-lite"
    _port_count: ClassVar[int] = 2  # the Pulsar protocol, then metrics over HTTP

    def __init__(
        self,
        *,
        port: int | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_grace: float = 5.0,
        log_level: LogLevel = "warn",
    ) -> None:
        super().__init__(
            port=port, work_dir=work_dir, startup_timeout=startup_timeout, stop_grace=stop_grace
        )
        self.log_level = log_level

    @property
    def service_url(self) -> str:
        """The URL for ``pulsar.Client``: ``pulsar://127.0.0.1:PORT``."""
        return f"pulsar://{self.address}"

    @property
    def metrics_url(self) -> str:
        """The broker's Prometheus endpoint: ``http://127.0.0.1:PORT/metrics``."""
        if len(self._ports) < 2:
            raise BrokerError(f"{self.title} has not been started")
        return f"http://{HOST}:{self._ports[1]}/metrics"

    # -- EmbeddedBroker ------------------------------------------------------------

    def _binary(self) -> str:
        try:
            return str(find_pulsar_lite_binary())
        except FileNotFoundError as exc:
            raise BrokerError(f"no pulsar-lite binary for {self.title}: {exc}") from exc

    def _command(self, binary: str, ports: Sequence[int], work_dir: Path) -> list[str]:
        config = work_dir / "pulsar-lite.toml"
        config.write_text(f'[metrics]\naddr = "{HOST}:{ports[1]}"\n')
        return [
            binary,
            "--config",
            str(config),
            "--addr",
            f"{HOST}:{ports[0]}",
            "--db-path",
            str(work_dir / "data"),
            "--log-level",
            self.log_level,
        ]

    def _probe(self, timeout: float) -> bool:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=timeout) as response:
                if response.status != 200:
                    return False
        except (urllib.error.URLError, OSError):
            return False
        client = pulsar.Client(
            self.service_url,
            operation_timeout_seconds=max(1, int(timeout)),
            connection_timeout_ms=int(timeout * 1000),
            # The client's chatter goes beside the broker's log, not to our stderr.
            logger=pulsar.FileLogger(
                pulsar.LoggerLevel.Info, str(self.work_dir / "probe-client.log")
            ),
        )
        try:
            topic = f"persistent://public/default/swimstream-probe-{uuid.uuid4().hex[:8]}"
            client.create_producer(topic).close()
        except pulsar.PulsarException:
            return False
        finally:
            client.close()
        return True
