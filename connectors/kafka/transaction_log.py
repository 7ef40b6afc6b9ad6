"""Why a transactional producer's transaction failed, for the calls it then refuses.

When the broker fails a transaction (its producer fenced by a newer one of the same
``transactional.id``, a transaction timed out), librdkafka says why in one log line
(``TXNERR``) and from then on refuses every produce with ``_STATE`` ("Erroneous
state", or ``_FATAL`` once fenced for good), which says nothing of it. A fenced
instance stopped naming only that, while the cause, another instance given its
``mesh.instance_id``, was in a client log line among many. The producer logs through
:class:`TransactionLog`, which keeps that line, and the sink's refusals carry it
(:meth:`TransactionLog.translate`). Its :meth:`TransactionLog.poll` keeps the fatal
error librdkafka raises once from a poll, which crashed whoever polled.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from confluent_kafka import KafkaException, Producer

from connectors.kafka.errors import FENCED_HINT, KafkaBrokerError, kafka_error_of, translate

_FAILED = "TXNERR"
"""librdkafka's log facility for "current transaction failed"."""
_REFUSED = frozenset({"_STATE", "_FATAL"})
"""librdkafka's refusals of a call after a transaction failed (abortable, or for good)."""
_THREAD = re.compile(r"^\[thrd:[^\]]*\]: ")
"""The thread a librdkafka line names first, of no use to a reader."""


class TransactionLog:
    """The ``logger`` a producer is given: passes every line on to ``client_log`` and
    keeps the last transaction failure's."""

    def __init__(self, client_log: logging.Logger, serve: Callable[[], None]) -> None:
        """``serve`` serves the producer's queued events (its ``poll(0)``): the log line
        of a failure is queued there, and may not be served yet when a call is refused
        for it."""
        self._client_log = client_log
        self._serve = serve
        self.failure: str | None = None

    def log(self, level: int, message: str, *args: object) -> None:
        """As :meth:`logging.Logger.log`; confluent-kafka calls it as
        ``log(level, "%s [%s] %s", facility, client name, text)``."""
        if args and args[0] == _FAILED:
            self.failure = _THREAD.sub("", str(args[-1]), count=1)
        self._client_log.log(level, message, *args)

    def translate(self, exc: KafkaException, doing: str) -> KafkaBrokerError:
        """:func:`~connectors.kafka.errors.translate`, saying why the transaction failed
        when ``exc`` is librdkafka's refusal of a call after the failure (``_STATE``,
        or ``_FATAL`` after a fatal one)."""
        error = translate(exc, doing)
        if error.code not in _REFUSED:
            return error
        if self.failure is None:
            self._serve()
        failure = self.failure
        if failure is None:
            return error
        hint = f"; {FENCED_HINT}" if "FENCED" in failure else ""
        return KafkaBrokerError(
            f"{error}, as the transaction had failed: {failure}{hint}",
            code=error.code,
            retriable=error.retriable,
            fatal=error.fatal,
            abortable=True,
        )

    def poll(self, producer: Producer) -> None:
        """``producer.poll(0)``, which raises a fatal error (the producer fenced) once,
        at the first poll after it: the error callback has reported it, and every later
        call on the producer fails naming it. Raised from here it crashed whoever
        polled (the service's last flush at a stop, with a traceback, its sources and
        local store left unclosed); it is kept as the transaction's failure instead."""
        try:
            producer.poll(0)
        except KafkaException as exc:
            error = kafka_error_of(exc)
            if error is None or not error.fatal():
                raise
            self.failure = f"{error.str()} ({error.name()})"
