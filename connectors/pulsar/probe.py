"""Whether a Pulsar broker answers, for readiness: a lookup every few seconds.

A broker that hangs (a stopped process, a stuck JVM, a network that drops packets)
closes no connection, so the client's consumers stay "connected" until its keep-alive
gives up: about 40 s measured against a SIGSTOPped pulsar-lite, and the Python client
does not expose the interval. A source's ``connected`` (and so ``/readyz``) would stay
green all that time. The probe asks the broker for a topic's partitions every
:data:`INTERVAL` seconds, on a client of its own whose operation timeout is
:data:`TIMEOUT` (the source's client keeps its longer one for subscribing), in a thread
of its own (the client releases the interpreter while it waits). ``answering`` turns
False once no answer came for :data:`STALE_AFTER` seconds, and True with the next one.
Transitions are logged once each.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from connectors.pulsar._client import (
    PulsarClient,
    PulsarError,
    acquire_client,
    let_go,
    release_client,
)
from connectors.pulsar.settings import PulsarSettings

INTERVAL = 2.0
"""Seconds between two lookups."""

TIMEOUT = 3.0
"""Seconds a lookup may take (the probe client's operation timeout)."""

STALE_AFTER = INTERVAL + TIMEOUT + 1.0
"""Seconds without an answer after which the broker counts as not answering."""

log = logging.getLogger("swimstream.pulsar")


class BrokerProbe:
    """Looks ``topic`` up every :data:`INTERVAL` seconds; see the module docstring."""

    def __init__(self, service_url: str, topic: str, settings: PulsarSettings) -> None:
        self.service_url = service_url
        self.topic = topic
        self._settings = dataclasses.replace(settings, operation_timeout=TIMEOUT)
        self._client: PulsarClient | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_answer = time.monotonic()
        self._reported_silent = False

    @property
    def answering(self) -> bool:
        """Whether the broker answered a lookup within the last :data:`STALE_AFTER` s."""
        return time.monotonic() - self._last_answer < STALE_AFTER

    def start(self) -> None:
        """Make the probe's client and start looking up (blocks: makes a client)."""
        self._client = acquire_client(self.service_url, self._settings, "probe")
        self._last_answer = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(self._client,), name="pulsar-probe", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop looking up and give the client back (blocks while the client closes).

        The thread is not waited for: it is a daemon, and a lookup it is in ends when
        the client closes under it, or at its timeout; either way it then sees the stop.
        (Joining it held a SIGTERM's drain up by up to 4 s while the broker was away.)"""
        self._stop.set()
        if self._client is not None:
            release_client(self._client)
            self._client = None

    async def close(self, timeout: float) -> None:
        """:meth:`stop` without blocking, waiting for the broker up to ``timeout``
        seconds (see :func:`~connectors.pulsar._client.let_go`)."""
        self._stop.set()
        client, self._client = self._client, None
        if client is not None:
            await let_go(client, timeout)

    def _run(self, client: PulsarClient) -> None:
        while not self._stop.wait(INTERVAL):
            try:
                client.partitions_of(self.topic)
            except PulsarError:
                self._check_silence()
                continue
            self._last_answer = time.monotonic()
            if self._reported_silent:
                self._reported_silent = False
                log.warning(
                    "the Pulsar broker at %s answers again",
                    self.service_url,
                    extra={"broker": self.service_url},
                )

    def _check_silence(self) -> None:
        silent = time.monotonic() - self._last_answer
        if silent >= STALE_AFTER and not self._reported_silent:
            self._reported_silent = True
            log.warning(
                "the Pulsar broker at %s has not answered a lookup for %.0f s; not ready "
                "until it does",
                self.service_url,
                silent,
                extra={"broker": self.service_url},
            )
