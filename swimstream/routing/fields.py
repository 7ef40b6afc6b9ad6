"""Reading one routing value out of a broker record, as a quoted URI segment.

A source's route template names the values that address an agent: the record key, a
payload field, a header, the topic or the partition. Each placeholder compiles to one
*extractor*: a function of the record's parts that returns the value spelled as a path
segment, or raises :class:`RecordRoutingError` with the reason a person reading the
dead-letter topic needs (``payload field 'vehicle_id' is missing``).

Extractors run for every record, so the success path is a dict lookup or two, a type
test and a regular-expression match; the careful walk that explains a failure runs only
when the fast path has already failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from swimstream.errors import RecordRoutingError
from swimstream.routing.segments import quote_segment

# key, payload, headers, topic, partition -> one quoted segment (or, verbatim, the text of
# a placeholder that shares its segment)
Extractor = Callable[[bytes | None, Any, Mapping[str, bytes], str, int], str]

Quote = Callable[[str], str]
"""How an extractor spells the text it read: :func:`quote_segment` for a placeholder alone
in its segment, :data:`VERBATIM` for one that shares it (the segment is quoted whole)."""

VERBATIM: Quote = str
"""Leaves text as it is (``str`` of a ``str`` is the same object, at the cost of a C call)."""

_MISSING = object()


def describe(value: object) -> str:
    """How a JSON reader would name the type of ``value``, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


EXACT_FLOAT_LIMIT = 2.0**53
"""Floats from here on cannot tell neighbouring integers apart."""


def to_segment(value: Any, label: str, quote: Quote = quote_segment) -> str:
    """``value`` as a quoted segment, if it is a non-empty scalar; ``label`` names it.
    ``quote`` spells the text (:data:`VERBATIM` leaves it unquoted).

    A whole float is spelled as the integer it equals (``1.0`` as ``1``, ``-0.0`` as
    ``0``), other floats as Python's shortest repr (``1.5``).
    """
    kind = type(value)
    if kind is str:
        text: str = value
    elif kind is int:
        text = str(value)
    elif kind is bool:
        text = "true" if value else "false"
    elif kind is float:
        if not math.isfinite(value):
            raise RecordRoutingError(f"{label} is {value}, not a usable value")
        if abs(value) >= EXACT_FLOAT_LIMIT:
            # Neighbouring ids would share an agent; JSON integers beyond 64 bits are
            # read as floats, so this is how a too-large integer id shows up.
            raise RecordRoutingError(
                f"{label} is {value!r}, a number too large to name an agent exactly"
                " (integers beyond 64 bits are read as floats); send it as a string"
            )
        # JSON has one kind of number: 1.0 and -0.0 must name the agents 1 and 0 do, or
        # a producer that writes ids as floats would split each agent in two.
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, bytes | bytearray):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise RecordRoutingError(f"{label} is not UTF-8 text") from None
    elif value is None:
        raise RecordRoutingError(f"{label} is null")
    elif isinstance(value, str):  # a subclass, such as a StrEnum member: its text
        text = str.__str__(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = int.__repr__(value)
    else:
        raise RecordRoutingError(f"{label} is not a scalar (it is {describe(value)})")
    if not text:
        raise RecordRoutingError(f"{label} is empty")
    return quote(text)


def key_extractor(quote: Quote = quote_segment) -> Extractor:
    """``{key}``: the record key as UTF-8 text."""

    def extract(
        key: bytes | None, payload: Any, headers: Mapping[str, bytes], topic: str, partition: int
    ) -> str:
        if key is None:
            raise RecordRoutingError("record has no key")
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordRoutingError("record key is not UTF-8 text") from None
        if not text:
            raise RecordRoutingError("record key is empty")
        return quote(text)

    return extract


def topic_extractor(quote: Quote = quote_segment) -> Extractor:
    """``{topic}``: the name of the topic the record came from."""

    def extract(
        key: bytes | None, payload: Any, headers: Mapping[str, bytes], topic: str, partition: int
    ) -> str:
        return to_segment(topic, "topic", quote)

    return extract


def partition_extractor() -> Extractor:
    """``{partition}``: the partition number the record came from (digits: its own quoting)."""

    def extract(
        key: bytes | None, payload: Any, headers: Mapping[str, bytes], topic: str, partition: int
    ) -> str:
        return str(partition)

    return extract


def header_extractor(name: str, quote: Quote = quote_segment) -> Extractor:
    """``{header.<name>}``: one record header's value as UTF-8 text."""
    label = f"header {name!r}"

    def extract(
        key: bytes | None, payload: Any, headers: Mapping[str, bytes], topic: str, partition: int
    ) -> str:
        value = headers.get(name, _MISSING)
        if value is _MISSING:
            raise RecordRoutingError(f"{label} is missing")
        return to_segment(value, label, quote)

    return extract


def payload_extractor(path: tuple[str, ...], quote: Quote = quote_segment) -> Extractor:
    """``{payload}`` or ``{payload.a.b}``: the payload, or a field nested in it."""
    label = f"payload field {'.'.join(path)!r}" if path else "payload"
    if not path:

        def extract_whole(
            key: bytes | None,
            payload: Any,
            headers: Mapping[str, bytes],
            topic: str,
            partition: int,
        ) -> str:
            return to_segment(payload, label, quote)

        return extract_whole

    def extract(
        key: bytes | None, payload: Any, headers: Mapping[str, bytes], topic: str, partition: int
    ) -> str:
        value = payload
        try:
            for name in path:
                value = value[name]
        except (KeyError, TypeError, IndexError):
            value = walk(payload, path, label)
        return to_segment(value, label, quote)

    return extract


def walk(payload: Any, path: tuple[str, ...], label: str) -> Any:
    """Follow ``path`` into ``payload`` carefully: numeric names index lists.

    Returns the value found, or raises :class:`RecordRoutingError` saying where the path
    broke off. The fast path of :func:`payload_extractor` handles objects only; this one
    also runs when a list stands on the path.
    """
    if not isinstance(payload, Mapping):
        raise RecordRoutingError(f"payload is not a JSON object (it is {describe(payload)})")
    value: Any = payload
    for depth, name in enumerate(path):
        if isinstance(value, Mapping):
            if name not in value:
                raise RecordRoutingError(f"{label} is missing")
            value = value[name]
        elif isinstance(value, list | tuple) and name.isdigit():
            if int(name) >= len(value):
                raise RecordRoutingError(f"{label} is missing (the list is shorter)")
            value = value[int(name)]
        else:
            parent = ".".join(path[:depth])
            raise RecordRoutingError(f"{label} is missing ({parent!r} is {describe(value)})")
    return value
