"""confluent-kafka's errors, translated where they cross into swimstream.

Every ``KafkaException`` and ``KafkaError`` that leaves :mod:`connectors.kafka` becomes a
:class:`KafkaBrokerError` (a :class:`~swimstream.errors.BrokerError`), raised ``from``
the original, whose message says what was being done, against which broker and topic,
what the broker said, and, for the failures people actually meet, what to check. The
flags librdkafka attaches (retriable, fatal, transaction must be aborted) are kept as
attributes so that a caller can decide between retrying, aborting and stopping without
parsing messages.

Errors that arrive as events rather than exceptions (a broker that went away, an
authentication failure) are logged through :class:`ErrorLog`, which says the first
occurrence of each kind at once and then at most once per interval with a count, so an
unreachable broker produces a readable trickle instead of a flood. librdkafka's own log
lines (:data:`CLIENT_LOG`) get the same treatment from :class:`RepeatFilter`: a client
that cannot connect logs every attempt, several a second. Before that,
:class:`CredentialFilter` hides the credentials of a URL such a line quotes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException

from swimstream.config.secrets import HIDDEN
from swimstream.errors import BrokerError
from swimstream.logfields import Log
from swimstream.ratelimit import RateLimit, more_since

# The librdkafka error codes that mean "cannot talk to the broker", as opposed to "the
# broker refused".
UNREACHABLE: frozenset[int] = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
    }
)

FENCED_HINT = (
    "another producer with this transactional.id took over: another instance with the "
    "same mesh.instance_id started (give every instance its own), or the broker ended a "
    "transaction open longer than transaction.timeout.ms"
)
"""Why a transactional producer was fenced: its id is the app's and the instance's."""

_HINTS: dict[int, str] = {
    KafkaError._TRANSPORT: "is the broker running and reachable from here?",
    KafkaError._ALL_BROKERS_DOWN: "is the broker running and reachable from here?",
    KafkaError._RESOLVE: "check the host names in the bootstrap servers",
    KafkaError._TIMED_OUT: "the broker did not answer in time; is it running and reachable?",
    KafkaError._MSG_TIMED_OUT: "the broker did not acknowledge in time; it may or may not "
    "have written the record",
    KafkaError.UNKNOWN_TOPIC_OR_PART: "does the topic exist? (broker.create_topics creates "
    "missing topics at start)",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "this principal may not use the topic; check ACLs",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "this principal may not use the consumer group; "
    "check ACLs",
    KafkaError._AUTHENTICATION: "check the sasl.* / ssl.* settings",
    KafkaError._SSL: "check the ssl.* settings and certificates",
    KafkaError._FENCED: FENCED_HINT,
    KafkaError.PRODUCER_FENCED: FENCED_HINT,
    KafkaError.FENCED_INSTANCE_ID: "another member uses the same group.instance.id "
    "(mesh.instance_id); give every instance its own",
    KafkaError.POLICY_VIOLATION: "the broker's topic policy refused the settings",
    KafkaError.INVALID_REPLICATION_FACTOR: "set broker.replication_factor to at most the "
    "number of brokers",
}


class KafkaBrokerError(BrokerError):
    """A Kafka operation failed; the message names the operation, broker and topic.

    Attributes:
        code: librdkafka's error name (``_TRANSPORT``, ``UNKNOWN_TOPIC_OR_PART``, ...),
            or ``""`` when the failure was found by swimstream rather than reported by
            librdkafka.
        retriable: the same call may succeed if repeated.
        fatal: the client is unusable and must be recreated.
        abortable: the current transaction must be aborted before anything else.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        retriable: bool = False,
        fatal: bool = False,
        abortable: bool = False,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message, unreachable=unreachable)
        self.code = code
        self.retriable = retriable
        self.fatal = fatal
        self.abortable = abortable


def kafka_error_of(exc: KafkaException | KafkaError) -> KafkaError | None:
    """The KafkaError inside a KafkaException (or the error itself)."""
    if isinstance(exc, KafkaError):
        return exc
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, KafkaError) else None


def describe(error: KafkaError) -> str:
    """``what the broker said (CODE)``, with a hint when there is a useful one."""
    text = f"{error.str()} ({error.name()})"
    hint = _HINTS.get(error.code())
    if error.code() == KafkaError._TRANSPORT and "state SSL_HANDSHAKE" in text:
        hint = "is the listener a TLS one? check security.protocol"
    return f"{text}; {hint}" if hint else text


def translate(exc: KafkaException | KafkaError, doing: str) -> KafkaBrokerError:
    """A :class:`KafkaBrokerError` for ``exc``; ``doing`` says what failed and where,
    e.g. ``"committing offsets of orders[0, 3] on Kafka at host:9092"``.

    Use as ``raise translate(exc, ...) from exc``.
    """
    error = kafka_error_of(exc)
    if error is None:
        return KafkaBrokerError(f"{doing} failed: {exc}")
    abortable = bool(getattr(error, "txn_requires_abort", lambda: False)())
    return KafkaBrokerError(
        f"{doing} failed: {describe(error)}",
        code=error.name(),
        retriable=error.retriable(),
        fatal=error.fatal(),
        abortable=abortable,
        unreachable=error.code() in UNREACHABLE,
    )


class ErrorLog:
    """Logs client error events: each kind at once, then at most once per ``interval``.

    Thread-safe enough for its job: librdkafka calls it from whichever thread serves the
    client, and a lost count under a race only makes one summary line slightly low.
    """

    def __init__(
        self,
        logger: Log,
        where: str,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._where = where
        self._interval = interval
        self._clock = clock
        self._limits: dict[int, RateLimit[None]] = {}

    def report(self, error: KafkaError, level: int = logging.WARNING) -> None:
        """Log ``error`` unless the same kind was logged less than ``interval`` ago."""
        code = error.code()
        limit = self._limits.get(code)
        if limit is None:
            limit = self._limits[code] = RateLimit(self._interval, self._clock)
        repeats = limit.admit()
        if repeats is not None:
            again = more_since(repeats, " like it")
            self._logger.log(level, "%s: %s%s", self._where, describe(error), again)


class RepeatFilter(logging.Filter):
    """Passes a log line, then drops lines like it for ``interval`` seconds.

    Lines are alike when they differ only in numbers (milliseconds, counts, ports). The
    next line of a kind that passes says how many like it were dropped meanwhile.
    """

    MAX_KINDS = 1000
    """Kinds remembered at most; beyond it the memory starts afresh."""

    _NUMBERS = re.compile(r"\d+")

    def __init__(self, interval: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._limits: dict[tuple[int, str], RateLimit[None]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = (record.levelno, self._NUMBERS.sub("#", message))
        limit = self._limits.get(kind)
        if limit is None:
            if len(self._limits) >= self.MAX_KINDS:
                self._limits.clear()
            limit = self._limits[kind] = RateLimit(self._interval, self._clock)
        dropped = limit.admit()
        if dropped is None:
            return False
        if dropped:
            record.msg, record.args = f"{message}{more_since(dropped, ' like it')}", None
        return True


class CredentialFilter(logging.Filter):
    """Hides the credentials a URL in a client's log line carries.

    librdkafka redacts its sensitive settings, but not a URL one holds: a failed OAuth
    token request is logged, as an error, with ``sasl.oauthbearer.token.endpoint.url``
    whole, ``https://user:password@idp/token?client_secret=...`` included. The user
    part of a URL and the values of its query parameters named like a secret are
    shown as ``[hidden]``.
    """

    _USERINFO = re.compile(r"(://)[^\s/@\"']+@")
    _SECRET_PARAMETER = re.compile(
        r"([?&][^=&\s\"']*(?:secret|password|passphrase|token|key)[^=&\s\"']*=)[^&#\s\"']*",
        re.IGNORECASE,
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message:
            hidden = self._USERINFO.sub(rf"\1{HIDDEN}@", message)
            hidden = self._SECRET_PARAMETER.sub(rf"\1{HIDDEN}", hidden)
            if hidden != message:
                record.msg, record.args = hidden, None
        return True


CLIENT_LOG = logging.getLogger("swimstream.kafka.client")
"""The logger librdkafka's clients write to (``logger`` in their settings)."""
CLIENT_LOG.addFilter(CredentialFilter())
CLIENT_LOG.addFilter(RepeatFilter())
