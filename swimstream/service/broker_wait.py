"""Opening the broker clients at start: waiting out a broker that does not answer yet,
and giving the wait up the moment a stop is asked for.

Orchestrators start a service next to its broker, not after it (compose without a
health condition, a pod beside a restarting cluster); Kafka Streams and Faust wait for
the broker too. Only silence is waited out, with a line at each try (backing off to one
every :data:`START_RETRY_MAX` seconds): a broker that answers no (authentication, a
refused setting) stops the start at once.

A try can hang for the client's own timeout (10 s for a Kafka metadata request to a
port that accepts TCP but does not speak Kafka), so each try is raced against the stop:
SIGTERM in the middle of one cancels it, which closes whatever it had opened, and the
process exits at once instead of after the timeout (with ``docker stop``'s 10 s grace,
close to being killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from swimstream.config import AppConfig
from swimstream.errors import BrokerError
from swimstream.service.wiring import ConnectorFactory, ProtocolClients
from swimstream.web.startup import StartingServer

log = logging.getLogger("swimstream.service")

START_RETRY_FIRST = 1.0
"""Seconds before the first retry of a broker that did not answer at start."""
START_RETRY_MAX = 10.0
"""Longest wait between two tries of a silent broker at start (doubling up to it)."""

Clients = dict[str, ProtocolClients]


def broker_address(config: AppConfig) -> str:
    """Where the clients connect, as the start's log lines name it."""
    broker = config.broker
    if broker.kind == "embedded":
        return f"the embedded {broker.embedded_kind.capitalize()} broker"
    addresses = {"kafka": broker.bootstrap, "pulsar": broker.service_url}
    return ", ".join(str(addresses[protocol]) for protocol in sorted(config.protocols))


def broker_fields(config: AppConfig) -> dict[str, str]:
    """The ``broker`` field of the start's lines about the broker (none for the embedded
    one, whose address is new at every run)."""
    return {} if config.broker.kind == "embedded" else {"broker": broker_address(config)}


async def open_clients(
    connectors: ConnectorFactory,
    config: AppConfig,
    instance_id: str,
    stack: AsyncExitStack,
    stop: asyncio.Event,
    starting: StartingServer,
) -> Clients | None:
    """The broker clients, entered into ``stack``; None when ``stop`` was set first.

    Raises:
        BrokerError: the broker answered no (anything but unreachable).
    """
    started = time.monotonic()
    delay = START_RETRY_FIRST
    where, fields = broker_address(config), broker_fields(config)
    if config.broker.kind == "embedded":  # ("the broker at the embedded broker" misread)
        log.info("starting %s and connecting to it", where)
    else:
        log.info("connecting to the broker at %s", where, extra=fields)  # (then one a try)
    while True:
        try:
            opened = await _try_opening(connectors(config, instance_id), stop)
        except BrokerError as exc:
            if stop.is_set():
                return None
            if not exc.unreachable:
                raise
            waited = time.monotonic() - started
            log.warning(
                "waiting for the broker (%.0f s so far, next try in %g s): %s",
                waited,
                delay,
                exc,
                extra=fields,
            )
            starting.set_waiting("waiting for the broker", started, str(exc))
        else:
            if opened is None:
                return None
            clients, closing = opened
            await stack.enter_async_context(closing)
            for protocol, client in sorted(clients.items()):
                log.info(
                    "connected to %s at %s in %.1f s",
                    protocol.capitalize(),
                    client.address,
                    time.monotonic() - started,
                    extra={"broker": client.address},
                )
            return clients
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            delay = min(delay * 2, START_RETRY_MAX)
        else:
            return None


async def _try_opening(
    opening: AbstractAsyncContextManager[Clients], stop: asyncio.Event
) -> tuple[Clients, AsyncExitStack] | None:
    """One try at opening the clients: them and the stack that closes them, or None
    when ``stop`` is set first. The try is then cancelled, and the cancel unwinds what
    it had opened (a client in the middle of a hung request is closed by its own
    thread once the request times out: nothing waits for it)."""
    closing = AsyncExitStack()
    attempt = asyncio.ensure_future(closing.enter_async_context(opening))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({attempt, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # (cancelled ourselves)
        await _abandon(attempt, closing)
        raise
    finally:
        stopped.cancel()
    if not attempt.done():
        await _abandon(attempt, closing)
        return None
    return attempt.result(), closing


async def _abandon(attempt: asyncio.Future[Clients], closing: AsyncExitStack) -> None:
    """Cancel a try and close what it opened (all of it, had it just finished)."""
    attempt.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await attempt
    await closing.aclose()
