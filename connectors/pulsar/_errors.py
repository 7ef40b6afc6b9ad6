"""Pulsar client failures turned into :class:`~swimstream.errors.BrokerError` messages.

The client says ``Pulsar error: TimeOut`` and nothing else. What the operator needs is
what swimstream was doing, the client's code, and what usually causes that code, so each
message reads ``subscribing 'twins' to 'events' failed (ConsumerBusy): another consumer
holds ...``. The same code arrives two ways, as an exception from a blocking call or as
a result code handed to a callback; both end here.

This module imports nothing of pulsar-client: codes are matched by name, which is how
the client names both its exception classes and its result codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from swimstream.errors import BrokerError

_NO_NOTES: Mapping[str, str] = MappingProxyType({})

UNREACHABLE = frozenset({"ConnectError", "Timeout"})
"""Result codes that mean the broker did not answer, rather than answered no."""

_HINTS: dict[str, str] = {
    "Timeout": (
        "the broker did not answer within the operation timeout; is it running and "
        "reachable, and is the service URL right?"
    ),
    "ConnectError": "no connection to the broker; is it running, and is the service URL right?",
    "NotConnected": "the connection to the broker is down; the client is reconnecting",
    "LookupError": "the broker could not say which broker serves the topic",
    "ServiceUnitNotReady": "the topic's bundle is moving between brokers; retry shortly",
    "AuthenticationError": "the broker refused the client's credentials",
    "AuthorizationError": "the client's role may not use this topic or namespace",
    "TopicNotFound": (
        "the topic does not exist and the broker does not create topics automatically"
    ),
    "InvalidTopicName": "topic names look like 'name' or 'persistent://tenant/namespace/name'",
    "InvalidUrl": "service URLs look like pulsar://host:6650 or pulsar+ssl://host:6651",
    "ConsumerBusy": (
        "another consumer holds this Exclusive subscription, or the subscription exists "
        "with another type; use the same subscription type everywhere, or another "
        "subscription name"
    ),
    "ProducerBusy": "a producer with the same name is already connected to the topic",
    "ProducerQueueIsFull": "too many records in flight; raise max_pending_messages",
    "MemoryBufferIsFull": "the client's memory limit for records in flight is reached",
    "MessageTooBig": "the record exceeds the broker's maximum message size",
    "TopicTerminated": "the topic was terminated and accepts no more records",
    "ProducerBlockedQuotaExceededError": "the namespace's backlog quota is exceeded",
    "ProducerBlockedQuotaExceededException": "the namespace's backlog quota is exceeded",
    "IncompatibleSchema": "the topic has a schema; swimstream writes raw bytes",
    "AlreadyClosed": "the client, producer or consumer was already closed",
}


def _describe(code: str, doing: str, detail: str = "", notes: Mapping[str, str] = _NO_NOTES) -> str:
    hint = "; ".join(filter(None, (_HINTS.get(code), notes.get(code))))
    message = f"{doing} failed ({code})"
    if detail and detail != f"Pulsar error: {code}":
        message += f": {detail}"
    return f"{message}: {hint}" if hint else message


def _shown(text: str) -> str:
    return text


def broker_error(
    exc: BaseException,
    doing: str,
    notes: Mapping[str, str] = _NO_NOTES,
    *,
    hide: Callable[[str], str] = _shown,
) -> BrokerError:
    """The error to raise (``from exc``) for an exception of a blocking client call.

    ``doing`` says what swimstream was doing, in the gerund: ``"subscribing to 'x'"``;
    ``notes`` adds causes particular to that operation, per code; ``hide`` takes the
    secrets out of the client's words (a refused argument may be quoted whole).
    """
    code = type(exc).__name__
    detail = hide(str(exc))
    return BrokerError(_describe(code, doing, detail, notes), unreachable=code in UNREACHABLE)


def result_error(code: str, doing: str) -> BrokerError:
    """The error for a failed result code (its name, e.g. ``"Timeout"``) of a callback."""
    return BrokerError(_describe(code, doing), unreachable=code in UNREACHABLE)
