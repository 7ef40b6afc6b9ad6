"""Records across the Pulsar boundary: Kafka-shaped on our side, Pulsar messages on the wire.

The service reads records through :class:`~swimstream.streams.connector.InboundRecord`,
the shape of ``confluent_kafka.Message``; :class:`PulsarRecord` gives a Pulsar message
that shape. A Kafka record's parts map onto a Pulsar message's as follows:

========  =====================  ==========================================================
Kafka     Pulsar                 caveat
========  =====================  ==========================================================
key       partition key          Pulsar's key is text. UTF-8 keys pass as they are; any
                                 other bytes travel base64-encoded and marked with the
                                 property ``swimstream-key-encoding: base64`` (what the
                                 Java client's ``keyBytes`` does with a protocol flag the
                                 Python client does not expose), so they round-trip
                                 through swimstream exactly. An empty key arrives as no
                                 key: Pulsar does not tell the two apart. A key another
                                 client wrote as bytes that are not UTF-8 (C++ and Go
                                 producers can) is read back as those bytes.
value     payload                ``None`` is sent as Pulsar's null value (a tombstone).
headers   properties             Properties are a text-to-text map, so this is lossy:
                                 header values that are not UTF-8 have their bad bytes
                                 replaced with U+FFFD, of repeated names only the last
                                 survives, and they come back sorted by name (the broker
                                 keeps a map, not a list). ``swimstream-key-encoding`` is
                                 reserved. Properties another client wrote as bytes that
                                 are not UTF-8 cannot be read at all (the client decodes
                                 the map whole): ``headers()`` raises, as
                                 confluent-kafka's does for such header names.
offset    (none)                 Pulsar has no integer offsets; the source numbers what it
                                 receives (see :mod:`connectors.pulsar.offsets`).
========  =====================  ==========================================================
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from connectors.pulsar._client import Message
from swimstream.errors import RecordDecodeError

KEY_ENCODING_PROPERTY = "swimstream-key-encoding"
"""The property that marks a partition key as base64 of arbitrary bytes."""


def encode_key(key: bytes | None) -> tuple[str | None, bool]:
    """The partition key for ``key``, and whether it had to be base64-encoded."""
    if not key:
        return None, False
    try:
        return key.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(key).decode("ascii"), True


def encode_properties(
    headers: Sequence[tuple[str, bytes]] | None, key_is_base64: bool
) -> dict[str, str]:
    """Message properties for Kafka-style headers (lossy: see the module docstring)."""
    properties = {name: value.decode("utf-8", errors="replace") for name, value in headers or ()}
    if key_is_base64:
        properties[KEY_ENCODING_PROPERTY] = "base64"
    else:
        properties.pop(KEY_ENCODING_PROPERTY, None)
    return properties


def decode_key(partition_key: str | bytes, properties: dict[str, str]) -> bytes | None:
    """The key bytes a message's partition key stands for (``bytes``: a key that is not
    UTF-8, taken as it is)."""
    if not partition_key:
        return None
    if isinstance(partition_key, bytes):
        return partition_key
    if properties.get(KEY_ENCODING_PROPERTY) == "base64":
        try:
            return base64.b64decode(partition_key, validate=True)
        except binascii.Error:
            pass  # marked by someone else's producer, not base64 after all: keep the text
    return partition_key.encode("utf-8")


class PulsarRecord:
    """A received Pulsar message shaped like ``confluent_kafka.Message``.

    ``topic()`` is the topic as the source was given it (``events``, not
    ``persistent://public/default/events-partition-3``), so records match the configured
    source; ``partition()`` is the partition number from the ``-partition-N`` suffix, 0
    for a topic that is not partitioned; ``offset()`` is the source's local number.
    """

    __slots__ = ("_message", "_offset", "_partition", "_topic")

    def __init__(self, message: Message, topic: str, partition: int, offset: int) -> None:
        self._message = message
        self._topic = topic
        self._partition = partition
        self._offset = offset

    def topic(self) -> str:
        """The topic as configured on the source."""
        return self._topic

    def partition(self) -> int:
        """The partition number (0 when the topic is not partitioned)."""
        return self._partition

    def offset(self) -> int:
        """The source's local, per-partition number of this message."""
        return self._offset

    def key(self) -> bytes | None:
        """The partition key as bytes, ``None`` when the message has none.

        Never raises: a record whose key cannot be read could not even be dead-lettered,
        and the service stopped at it, again at every restart. The client decodes the
        key as UTF-8 and raises on other bytes, naming them whole, so they are taken
        from its error; properties that cannot be read hold no base64 mark."""
        message = self._message
        try:
            partition_key: str | bytes = message.partition_key()
        except UnicodeDecodeError as exc:
            partition_key = bytes(exc.object)
        try:
            properties = message.properties()
        except UnicodeDecodeError:
            properties = {}
        return decode_key(partition_key, properties)

    def value(self) -> bytes | None:
        """The payload; ``None`` for a null value (a tombstone)."""
        message = self._message
        return None if message.has_null_value() else message.data()

    def headers(self) -> list[tuple[str, bytes]] | None:
        """The message properties as UTF-8 headers, sorted by name; ``None`` when none.

        Raises:
            RecordDecodeError: a property name or value is not UTF-8 (another client
                wrote bytes): the service dead-letters the record without its headers,
                or as undecodable when a route reads one.
        """
        try:
            properties = self._message.properties()
        except UnicodeDecodeError as exc:
            raise RecordDecodeError(
                f"the message's properties are not UTF-8 ({exc.object[:64]!r}: {exc.reason})"
            ) from None
        headers = [
            (name, text.encode("utf-8"))
            for name, text in properties.items()
            if name != KEY_ENCODING_PROPERTY
        ]
        return headers or None

    def error(self) -> None:
        """Always ``None``: the source hands out records only, never consumer events."""
        return None

    def timestamp(self) -> tuple[int, int]:
        """``(1, ms)``: the publish time, as confluent-kafka's ``(TIMESTAMP_CREATE_TIME,
        ms)``."""
        return 1, self._message.publish_timestamp()

    def message_id(self) -> bytes:
        """The serialized Pulsar message id: a stable identity across redeliveries,
        unlike :meth:`offset`, which numbers deliveries."""
        return self._message.message_id().serialize()

    def origin_id(self) -> str:
        """The message id as Pulsar's tools print it, ``(ledger,entry,partition,batch)``:
        what a dead letter names its original by, as :meth:`offset` cannot."""
        return str(self._message.message_id())

    def __repr__(self) -> str:
        return f"<PulsarRecord {self._topic}[{self._partition}]@{self._offset}>"
