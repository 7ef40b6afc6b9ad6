"""Source route templates: how a broker record names the agent it is for.

A source in the configuration says ``route: /vehicle/{payload.vehicle_id}``. The
template is fixed text with placeholders, each standing for part of one segment:

============================  ==================================================
``{key}``                     the record key, as UTF-8 text
``{payload}``                 the whole payload, when it is a scalar (raw sources)
``{payload.a.b}``             a field of the JSON payload (an object: a list inside
                              it is indexed by numeric names, ``{payload.a.0}``)
``{header.region}``           a record header, as UTF-8 text
``{topic}``, ``{partition}``  where the record came from
============================  ==================================================

``parse`` checks the placeholders once; ``render`` runs for every record, so the template
is compiled to a tuple of fixed strings and extractor functions (see
:mod:`swimstream.routing.fields`), joined without any parsing. Values are quoted as path
segments, so a value holding ``/`` stays inside its segment. A record the template cannot
place raises :class:`RecordRoutingError`, whose message the service writes to the
dead-letter topic with the record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from swimstream.errors import InvalidRouteError
from swimstream.routing.fields import (
    VERBATIM,
    Extractor,
    Quote,
    header_extractor,
    key_extractor,
    partition_extractor,
    payload_extractor,
    topic_extractor,
)
from swimstream.routing.pattern import RoutePattern
from swimstream.routing.segments import check_fixed_text, quote_segment, split_path

_FIELD_NAME = re.compile(r"[A-Za-z0-9_\-]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_PLACEHOLDER_HELP = (
    "a placeholder is {key}, {payload}, {payload.<field>}, {header.<name>}, {topic} or {partition}"
)


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{...}`` of a template: its ``root`` (``key``, ``payload``, ``header``, ``topic``
    or ``partition``) and ``path`` (payload field names, or the header name)."""

    root: str
    path: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "{" + ".".join((self.root, *self.path)) + "}"

    @classmethod
    def parse(cls, content: str) -> Placeholder:
        """Parse the text between the braces; raise :class:`InvalidRouteError` if unknown."""
        root, dot, rest = content.partition(".")
        if root in ("key", "topic", "partition") and not dot:
            return cls(root)
        if root == "payload":
            if not dot:
                return cls(root)
            names = tuple(rest.split("."))
            for name in names:
                if _FIELD_NAME.fullmatch(name) is None:
                    raise InvalidRouteError(
                        f"bad field name {name!r} in placeholder {{{content}}}: "
                        "field names are letters, digits, '_' and '-'"
                    )
            return cls(root, names)
        if root == "header":
            if _HEADER_NAME.fullmatch(rest) is None:
                raise InvalidRouteError(
                    f"placeholder {{{content}}} needs a header name: {{header.<name>}}"
                )
            return cls(root, (rest,))
        raise InvalidRouteError(f"unknown placeholder {{{content}}}; {_PLACEHOLDER_HELP}")

    def extractor(self, quote: Quote = quote_segment) -> Extractor:
        """The function that reads this placeholder's value out of a record, spelt by
        ``quote`` (quoted as a segment unless told otherwise)."""
        if self.root == "key":
            return key_extractor(quote)
        if self.root == "topic":
            return topic_extractor(quote)
        if self.root == "partition":
            return partition_extractor()
        if self.root == "header":
            return header_extractor(self.path[0], quote)
        return payload_extractor(self.path, quote)


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """A parsed source route template such as ``/vehicle/{key}``; build it with :meth:`parse`."""

    text: str
    placeholders: tuple[Placeholder, ...]
    # the compiled render function (see _compile)
    _render: Extractor = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> RouteTemplate:
        """Parse ``text``; raise :class:`InvalidRouteError` saying what is wrong with it."""
        pieces: list[str | Extractor] = []
        placeholders: list[Placeholder] = []
        for segment in split_path(text):
            pieces.append("/")
            pairs = _scan(segment)
            for fixed, placeholder in pairs:
                if fixed:
                    check_fixed_text(fixed)
                if placeholder is not None:
                    placeholders.append(placeholder)
            if len(pairs) == 1 and not pairs[0][0] and pairs[0][1] is not None:
                pieces.append(pairs[0][1].extractor())  # /vehicle/{key}: the usual shape
            elif all(placeholder is None for _, placeholder in pairs):
                pieces.append(segment)
            else:
                pieces.append(_shared_segment(pairs))
        return cls(text, tuple(placeholders), _compile(_merge_fixed(pieces)))

    def __str__(self) -> str:
        return self.text

    @property
    def roots(self) -> frozenset[str]:
        """The record parts the template reads (``key``, ``payload``, ...)."""
        return frozenset(p.root for p in self.placeholders)

    def render(
        self,
        key: bytes | None,
        payload: Any,
        headers: Mapping[str, bytes],
        topic: str,
        partition: int,
    ) -> str:
        """The node URI for one record; raises :class:`RecordRoutingError` with the reason."""
        return self._render(key, payload, headers, topic, partition)

    def skeleton(self) -> str:
        """The template with each placeholder standing for itself: ``/vehicle/{key}``.

        Matching the skeleton against route patterns tells which agents the template can
        reach: braces never occur in a pattern's fixed text, so a placeholder lines up
        with a param segment only, never with fixed text it might happen to equal.
        """
        return self.text

    def key_param(self, pattern: RoutePattern) -> str | None:
        """The param of ``pattern`` that holds the record key, if the template puts
        ``{key}`` alone in that param's segment.

        Agents so addressed can be sharded by their key bytes with the partitioner the
        producers use, which puts each agent on the shard of the partition its events
        arrive on.
        """
        params = pattern.match(self.skeleton())
        if params is None:
            return None
        for name, value in params.items():
            if value == "{key}":
                return name
        return None


def _scan(segment: str) -> list[tuple[str, Placeholder | None]]:
    """Split one segment into (fixed text, following placeholder) pairs."""
    pairs: list[tuple[str, Placeholder | None]] = []
    rest = segment
    while rest:
        opening = rest.find("{")
        closing = rest.find("}")
        if opening < 0:
            if closing >= 0:
                raise InvalidRouteError(f"unmatched '}}' in {segment!r}")
            pairs.append((rest, None))
            break
        if closing < 0:
            raise InvalidRouteError(f"unclosed '{{' in {segment!r}")
        if closing < opening:
            raise InvalidRouteError(f"unmatched '}}' in {segment!r}")
        content = rest[opening + 1 : closing]
        if "{" in content:
            raise InvalidRouteError(f"unclosed '{{' in {segment!r}")
        if not content:
            raise InvalidRouteError(f"empty placeholder {{}} in {segment!r}")
        pairs.append((rest[:opening], Placeholder.parse(content)))
        rest = rest[closing + 1 :]
    return pairs


def _shared_segment(pairs: list[tuple[str, Placeholder | None]]) -> Extractor:
    """The extractor of a segment that placeholders share with each other or with fixed
    text (``{header.r}-{key}``, ``x{key}``): the segment's text, quoted whole.

    Quoting each value on its own spelt such a segment otherwise than the route table
    does (``x{key}`` with the key ``.`` gave ``x%2E``, ``{key}+`` gave ``k+``; the table
    spells them ``x.`` and ``k%2B``): the agent was the same, but the name the router
    handed on was not the agent's, so a source waiting for room in its full mailbox
    found no such agent and did not wait.
    """
    parts: list[str | Extractor] = []
    for fixed, placeholder in pairs:
        if fixed:
            parts.append(fixed)
        if placeholder is not None:
            parts.append(placeholder.extractor(VERBATIM))
    pieces = tuple(parts)

    def render_segment(
        key: bytes | None, payload: Any, headers: Mapping[str, bytes], topic: str, partition: int
    ) -> str:
        return quote_segment(
            "".join(
                [
                    piece
                    if isinstance(piece, str)
                    else piece(key, payload, headers, topic, partition)
                    for piece in pieces
                ]
            )
        )

    return render_segment


def _merge_fixed(pieces: list[str | Extractor]) -> tuple[str | Extractor, ...]:
    merged: list[str | Extractor] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return tuple(merged)


def _compile(pieces: tuple[str | Extractor, ...]) -> Extractor:
    """One function rendering the whole template, shaped for the common templates.

    ``/vehicle/{key}`` — fixed text then one placeholder — is by far the most common, and
    a concatenation is cheaper than building and joining a list.
    """
    if len(pieces) == 1 and isinstance(pieces[0], str):
        uri = pieces[0]

        def render_static(
            key: bytes | None,
            payload: Any,
            headers: Mapping[str, bytes],
            topic: str,
            partition: int,
        ) -> str:
            return uri

        return render_static
    if len(pieces) == 2 and isinstance(pieces[0], str) and not isinstance(pieces[1], str):
        prefix, extract = pieces[0], pieces[1]

        def render_prefixed(
            key: bytes | None,
            payload: Any,
            headers: Mapping[str, bytes],
            topic: str,
            partition: int,
        ) -> str:
            return prefix + extract(key, payload, headers, topic, partition)

        return render_prefixed

    def render(
        key: bytes | None, payload: Any, headers: Mapping[str, bytes], topic: str, partition: int
    ) -> str:
        return "".join(
            [
                piece if isinstance(piece, str) else piece(key, payload, headers, topic, partition)
                for piece in pieces
            ]
        )

    return render
