"""The one place pulsar-client is touched: its untyped surface behind precise Protocols.

pulsar-client ships no type information. Rather than let ``Any`` leak into the source
and sink, this module states the slice of the library they use as Protocols and hands
out objects typed by them.

Two layers of the library are used, on purpose:

* The public ``pulsar.Client`` builds consumers and producers, because its keyword
  arguments are the documented way to configure them.
* The hot path then runs on the objects of the C extension underneath (``_pulsar``),
  the same ones ``pulsar.asyncio`` drives: ``receive_async`` (absent from the blocking
  ``pulsar.Consumer``) lets :meth:`PulsarSource.wait_for_records` wait without holding a
  thread, and ``flush_async`` lets the sink flush without one. Their signatures are
  stated by pybind11 (``help(_pulsar.Consumer)``), which the Protocols below mirror.

Callbacks given to ``*_async`` run on the client's own threads. An exception escaping
one terminates the process (documented by pulsar-client), so every callback passed from
this package catches everything it could raise.

The sources of one process share one client per service URL (:func:`acquire_client`),
as Pulsar advises (one connection pool, one set of threads). It matters on pulsar-lite:
that broker tells a subscription's consumers apart by the id their client gave them, and
every client numbers its consumers from 0, so two clients' consumers on one subscription
collide (see :mod:`connectors.pulsar`); one client numbers them all, so in one process
they never do. The sinks share another client: on one connection, records going out
queued behind records coming in (50k records produced and consumed concurrently on
pulsar-lite: 9.2k/s over one connection, 15.6k/s over two).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import _pulsar  # type: ignore[import-not-found]  # the C extension pulsar-client is built on
import pulsar  # type: ignore[import-untyped]  # pulsar-client ships no type information

from connectors.native_threads import leave_behind
from connectors.pulsar._errors import broker_error, result_error
from connectors.pulsar.security import PulsarSecurity
from connectors.pulsar.settings import PulsarSettings
from connectors.reachable import unreachable
from swimstream.errors import BrokerError

PulsarError: type[Exception] = pulsar.PulsarException
"""The root of the exceptions the client raises."""

ReceiveTimeout: type[Exception] = pulsar.Timeout
"""Raised by a receive that found nothing within its timeout (zero: nothing queued)."""

log = logging.getLogger("swimstream.pulsar")

# The client's own log lines (connections, reconnections, lookups) go to standard output
# from its C++ threads, warnings and errors only. Not to Python logging, which the client
# supports: with a Python logger, a process whose client had retried a connection
# aborted at exit ("terminate called without an active exception", exit status 134) in
# 5 of 24 runs, closed client or not; with the console logger, in none of 12.
_client_log = pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn)

_CONSUMER_TYPES: Mapping[str, object] = {
    "key_shared": pulsar.ConsumerType.KeyShared,
    "shared": pulsar.ConsumerType.Shared,
    "failover": pulsar.ConsumerType.Failover,
    "exclusive": pulsar.ConsumerType.Exclusive,
}
_INITIAL_POSITIONS: Mapping[str, object] = {
    "earliest": pulsar.InitialPosition.Earliest,
    "latest": pulsar.InitialPosition.Latest,
}
_DEFAULT_PORTS = {"pulsar": 6650, "pulsar+ssl": 6651}


class Result(Protocol):
    """A ``_pulsar.Result`` code, as handed to callbacks."""

    @property
    def name(self) -> str: ...


class MessageId(Protocol):
    """Where a message is stored: ledger, entry and index inside a batch."""

    def ledger_id(self) -> int: ...

    def entry_id(self) -> int: ...

    def batch_index(self) -> int: ...

    def serialize(self) -> bytes: ...


class Message(Protocol):
    """A ``_pulsar.Message``, received or built for sending."""

    def data(self) -> bytes: ...

    def has_null_value(self) -> bool: ...

    def partition_key(self) -> str: ...

    def properties(self) -> dict[str, str]: ...

    def message_id(self) -> MessageId: ...

    def topic_name(self) -> str: ...

    def publish_timestamp(self) -> int: ...

    def redelivery_count(self) -> int: ...


ReceiveCallback = Callable[[Result, Message], None]
SendCallback = Callable[[Result, MessageId], None]
ResultCallback = Callable[[Result], None]


class Consumer(Protocol):
    """A ``_pulsar.Consumer`` on one topic partition."""

    def receive(self, timeout_millis: int, /) -> Message: ...

    def receive_async(self, callback: ReceiveCallback, /) -> None: ...

    def acknowledge(self, message_id: MessageId, /) -> None: ...

    def redeliver_unacknowledged_messages(self) -> None: ...

    def is_connected(self) -> bool: ...

    def close(self) -> None: ...

    def close_async(self, callback: ResultCallback, /) -> None: ...


class Producer(Protocol):
    """A ``_pulsar.Producer`` on one topic."""

    def send_async(self, message: Message, callback: SendCallback, /) -> None: ...

    def flush_async(self, callback: ResultCallback, /) -> None: ...

    def is_connected(self) -> bool: ...

    def close(self) -> None: ...

    def close_async(self, callback: ResultCallback, /) -> None: ...


class Closable(Protocol):
    """A consumer, producer or client: each can be closed without holding a thread."""

    def close_async(self, callback: ResultCallback, /) -> None: ...


def is_ok(result: Result) -> bool:
    """Whether a callback's result code means success."""
    return bool(result == pulsar.Result.Ok)


def ignore_result(result: Result) -> None:
    """A callback for operations whose outcome shows up elsewhere (a flush's records
    report through their own delivery callbacks)."""


def build_message(
    value: bytes | None, partition_key: str | None, properties: Mapping[str, str]
) -> Message:
    """A message ready for :meth:`Producer.send_async`; ``None`` is a null value (the
    tombstone of a compacted topic)."""
    builder = _pulsar.MessageBuilder()
    if value is None:
        builder.set_null_value()
    else:
        builder.content(value)
    if partition_key is not None:
        builder.partition_key(partition_key)
    if properties:
        builder.properties(dict(properties))
    message: Message = builder.build()
    return message


def check_reachable(service_url: str, timeout: float) -> None:
    """Raise :class:`BrokerError` at once when no broker of ``service_url`` accepts TCP.

    The client itself retries a refused connection until ``operation_timeout`` runs out
    (measured: exactly that long, 10 s by default) and then says only "TimeOut". A plain
    connect answers "refused" in a millisecond, and names the address. URLs that are not
    ``pulsar://`` or ``pulsar+ssl://`` (HTTP lookup) are left to the client.
    """
    parts = urlsplit(service_url)
    default_port = _DEFAULT_PORTS.get(parts.scheme)
    if default_port is None:
        return
    failures = unreachable(parts.netloc.split(","), default_port, timeout)
    if failures is None:
        return
    raise BrokerError(
        f"cannot reach the Pulsar broker at {service_url} ({'; '.join(failures)}); "
        "is the broker running, and is the service URL right?",
        unreachable=True,
    )


Purpose = Literal["consume", "produce", "probe"]
_ClientKey = tuple[Purpose, str, float, float, PulsarSecurity]
_shared_lock = threading.Lock()
_shared: dict[_ClientKey, tuple[PulsarClient, int]] = {}


def acquire_client(service_url: str, settings: PulsarSettings, purpose: Purpose) -> PulsarClient:
    """The process's client for ``service_url`` and ``purpose`` (made on first use);
    release it with :func:`release_client` once, whatever happens."""
    key = (
        purpose,
        service_url,
        settings.operation_timeout,
        settings.connection_timeout,
        settings.security,
    )
    with _shared_lock:
        client, users = _shared.get(key) or (None, 0)
        if client is None:
            client = PulsarClient(service_url, settings, key)
        _shared[key] = (client, users + 1)
        return client


def release_client(client: PulsarClient) -> None:
    """Give back a client from :func:`acquire_client`; the last user closes it (blocks)."""
    if not _give_back(client):
        return
    try:
        client.close()
    except PulsarError as exc:
        log.warning("%s", broker_error(exc, f"closing the Pulsar client of {client.service_url}"))


async def close_within(closing: Mapping[str, Closable], timeout: float) -> bool:
    """Close every one of ``closing`` (named by its key, for the log) at once and wait
    for them up to ``timeout`` seconds; whether all finished by then.

    A blocking ``close`` waits for the broker's answer for up to the operation timeout
    (10 s), one after another: with the broker gone, a source of three partitions took
    30 s to close, past any drain deadline. Failures and closes still going on at the
    deadline are logged; the broker forgets a consumer or producer whose connection
    goes (what it held is redelivered, as after a crash)."""
    loop = asyncio.get_running_loop()
    waiting: dict[asyncio.Future[Result], str] = {}
    for what, closable in closing.items():
        future: asyncio.Future[Result] = loop.create_future()
        try:
            closable.close_async(functools.partial(_hop, loop, future))
        except PulsarError as exc:
            log.warning("%s", broker_error(exc, f"closing {what}"))
            continue
        waiting[future] = what
    if not waiting:
        return True
    done, late = await asyncio.wait(waiting, timeout=max(0.0, timeout))
    for future in done:
        result = future.result()
        if not is_ok(result) and result.name != "AlreadyClosed":
            log.warning("%s", result_error(result.name, f"closing {waiting[future]}"))
    for future in late:
        what = waiting[future]
        log.warning("closing %s did not finish within %.1f s; left behind", what, timeout)
    if late:
        leave_behind()  # (the process then ends without the interpreter's shutdown)
    return not late


def _hop(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Result], result: Result) -> None:
    """Runs on a client thread, where an escaping exception would end the process."""
    with contextlib.suppress(Exception):  # (the loop is closed: nobody waits any more)
        loop.call_soon_threadsafe(_settle, future, result)


def _settle(future: asyncio.Future[Result], result: Result) -> None:
    if not future.done():
        future.set_result(result)


async def let_go(client: PulsarClient, timeout: float, *, abandoned: bool = False) -> None:
    """Give back a client from :func:`acquire_client` without blocking the loop; the
    last user closes it within ``timeout`` seconds, else shuts it down (its threads and
    connections go at once, without waiting for the broker). ``abandoned``: some of its
    consumers or producers did not close in time; it is shut down at once."""
    if not _give_back(client):
        return
    if abandoned or not await close_within(
        {f"the Pulsar client of {client.service_url}": client}, timeout
    ):
        client.shutdown()


def _give_back(client: PulsarClient) -> bool:
    """Count one user of ``client`` less; whether it was the last (who closes it)."""
    with _shared_lock:
        shared, users = _shared[client.key]
        if users > 1:
            _shared[client.key] = (shared, users - 1)
            return False
        del _shared[client.key]
        return True


ACROSS_PARTITIONS_LIMIT = 2**31 - 1
"""The client's ``max_pending_messages_across_partitions`` (an int32 in its C++ core)."""


class TokenFile:
    """The token in a file, read again at each connection (a mounted secret that is
    rotated takes effect at the next one), without the whitespace around it.

    It runs on the client's threads, where an exception escaping would end the process:
    a file that cannot be read gives the last token read (the one given at start, when
    the first contact read it), and the broker judges that."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._last = ""

    def __call__(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as file:
                self._last = file.read().strip()
        except Exception:  # (see the docstring: nothing may escape)
            log.warning("cannot read the Pulsar token file %s; sending the last token", self.path)
        return self._last


def security_options(security: PulsarSecurity) -> dict[str, Any]:
    """``pulsar.Client``'s keyword arguments for ``security`` (``broker.pulsar``).

    A token file is read by a supplier the client calls at each connection
    (:class:`TokenFile`), not given to its ``token`` plugin as ``file://``: that plugin
    sends the file whole, and a secret file's closing newline made every token wrong."""
    options: dict[str, Any] = {
        "tls_allow_insecure_connection": security.allow_insecure_connection,
        "tls_validate_hostname": security.validate_hostname,
    }
    if security.trust_certs_file is not None:
        options["tls_trust_certs_file_path"] = security.trust_certs_file
    method = security.method
    if method == "token":
        options["authentication"] = pulsar.AuthenticationToken(security.token)
    elif method == "token_file":
        options["authentication"] = pulsar.AuthenticationToken(TokenFile(str(security.token_file)))
    elif method == "tls":
        options["authentication"] = pulsar.AuthenticationTLS(
            security.certificate_path, security.private_key_path
        )
    elif method == "oauth2":
        options["authentication"] = pulsar.AuthenticationOauth2(security.oauth2_params)
    elif method == "basic":
        options["authentication"] = pulsar.AuthenticationBasic(
            security.basic_username, security.basic_password
        )
    return options


def producer_options(settings: PulsarSettings) -> dict[str, Any]:
    """What a topic's producer is made with.

    It blocks the sending thread, rather than fails, when its queue is full, which the
    sink never lets happen: it hands a topic's producer at most ``max_pending_messages``
    records. On a partitioned topic the client caps each partition's queue at the least
    of that and ``max_pending_messages_across_partitions`` (50,000 by default) over the
    partitions, so a hot key on a topic of more than five partitions would fill its
    partition's queue first, and block the event loop: the across-partitions limit is
    lifted so that only the sink's count bounds what is queued."""
    return {
        "batching_enabled": settings.batching,
        "batching_type": pulsar.BatchingType.KeyBased,
        "batching_max_messages": settings.batching_max_messages,
        "batching_max_publish_delay_ms": max(1, round(settings.batching_max_delay * 1000)),
        "max_pending_messages": settings.max_pending_messages,
        "max_pending_messages_across_partitions": ACROSS_PARTITIONS_LIMIT,
        "block_if_queue_full": True,
        "send_timeout_millis": max(1, round(settings.send_timeout * 1000)),
    }


class PulsarClient:
    """A ``pulsar.Client`` with typed methods for what the source and sink need.

    Consumers and producers get their settings per call, so one client serves sources
    and sinks with different settings; only the timeouts belong to the client.
    """

    def __init__(self, service_url: str, settings: PulsarSettings, key: _ClientKey) -> None:
        self.service_url = service_url
        self.key = key
        try:
            self._client = pulsar.Client(
                service_url,
                operation_timeout_seconds=max(1, math.ceil(settings.operation_timeout)),
                connection_timeout_ms=max(1, round(settings.connection_timeout * 1000)),
                logger=_client_log,
                **security_options(settings.security),
            )
        except (PulsarError, ValueError) as exc:
            doing = f"creating a Pulsar client for {service_url}"
            raise broker_error(exc, doing, hide=settings.security.hide) from exc

    def partitions_of(self, topic: str) -> list[str]:
        """The partition topics of ``topic``, or ``[topic]`` when it is not partitioned
        (fully qualified either way: ``persistent://public/default/t-partition-0``)."""
        partitions: list[str] = self._client.get_topic_partitions(topic)
        return partitions

    def subscribe(
        self, topic: str, subscription: str, consumer_name: str | None, settings: PulsarSettings
    ) -> Consumer:
        """A consumer of one (partition) topic, configured by ``settings``."""
        wrapper = self._client.subscribe(
            topic,
            subscription,
            consumer_type=_CONSUMER_TYPES[settings.subscription_type],
            initial_position=_INITIAL_POSITIONS[settings.initial_position],
            receiver_queue_size=settings.receiver_queue_size,
            consumer_name=consumer_name,
            # Batch index acknowledgement stays off: on pulsar-lite 0.2.0 it lost the
            # unacknowledged rest of partly acknowledged batches (measured), and without
            # it the worst case is a duplicate, which at-least-once allows.
            batch_index_ack_enabled=False,
        )
        consumer: Consumer = wrapper._consumer
        return consumer

    def create_producer(self, topic: str, settings: PulsarSettings) -> Producer:
        """A producer on ``topic`` (see :func:`producer_options`)."""
        wrapper = self._client.create_producer(topic, **producer_options(settings))
        producer: Producer = wrapper._producer
        return producer

    def close(self) -> None:
        """Close the client with every consumer and producer it made; blocks."""
        self._client.close()

    def close_async(self, callback: ResultCallback, /) -> None:
        """Close the client with every consumer and producer it made; ``callback`` runs
        on a client thread once done."""
        self._client._client.close_async(callback)

    def shutdown(self) -> None:
        """Release threads and connections at once, waiting for nothing: what was still
        in flight gets no callback."""
        self._client.shutdown()
