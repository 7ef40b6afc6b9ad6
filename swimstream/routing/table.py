"""The route table: which agent class (or anything else) answers a node URI.

Every event, command and link names a node URI, so lookup sits on the hot path. Patterns
are indexed by segment count and, when fixed, by their first segment: a lookup splits the
URI once, then tries only the few patterns of that bucket, best first. Patterns whose
first segment is a param wait in a second bucket per segment count, tried after. In front
of the index sits a bounded cache of recent answers, since the same agents are named
over and over; it is emptied whole when full (there is no per-hit bookkeeping to pay),
and whenever a pattern is added.

When two patterns match one URI the more specific one wins: compared from the left, a
fixed segment beats a param (``/vehicle/fleet`` before ``/vehicle/:id``). Patterns of the
same shape (``/a/:x`` and ``/a/:y``) would answer the same URIs, so the table refuses the
second one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, NamedTuple, TypeVar

from swimstream.errors import InvalidRouteError, NodeNotFoundError
from swimstream.routing.pattern import RoutePattern

T = TypeVar("T")


class RouteMatch(NamedTuple, Generic[T]):
    """The outcome of a lookup: the pattern that matched, what it was registered with,
    the params it captured and the URI in its canonical spelling."""

    pattern: RoutePattern
    target: T
    params: Mapping[str, str]  # shared between lookups of one URI: never mutate it
    uri: str


class RouteTable(Generic[T]):
    """Route patterns, each registered with a target, looked up by node URI."""

    __slots__ = ("_by_count", "_by_first", "_cache", "_cache_size", "_entries")

    def __init__(
        self, routes: Iterable[tuple[RoutePattern | str, T]] = (), *, cache_size: int = 65536
    ) -> None:
        self._cache: dict[str, RouteMatch[T] | None] = {}
        self._cache_size = cache_size
        self._entries: dict[tuple[str | None, ...], tuple[RoutePattern, T]] = {}
        # (segment count, fixed first segment) -> entries, best first
        self._by_first: dict[tuple[int, str], list[tuple[RoutePattern, T]]] = {}
        # segment count -> entries whose first segment is a param, best first
        self._by_count: dict[int, list[tuple[RoutePattern, T]]] = {}
        for pattern, target in routes:
            self.add(pattern, target)

    def add(self, pattern: RoutePattern | str, target: T) -> RoutePattern:
        """Register ``target`` under ``pattern`` and return the parsed pattern.

        Raises :class:`InvalidRouteError` when the pattern does not parse or has the shape
        of one already registered.
        """
        if isinstance(pattern, str):
            pattern = RoutePattern.parse(pattern)
        existing = self._entries.get(pattern.shape)
        if existing is not None:
            raise InvalidRouteError(
                f"route {pattern.text!r} overlaps {existing[0].text!r}: they match the same URIs"
            )
        entry = (pattern, target)
        self._entries[pattern.shape] = entry
        first = pattern.segments[0]
        count = len(pattern.segments)
        if first is not None:
            bucket = self._by_first.setdefault((count, first), [])
        else:
            bucket = self._by_count.setdefault(count, [])
        bucket.append(entry)
        bucket.sort(key=lambda item: item[0].precedence)
        self._cache.clear()
        return pattern

    def lookup(self, uri: str) -> RouteMatch[T] | None:
        """The best match for ``uri``, or ``None`` when no pattern matches it."""
        try:
            return self._cache[uri]
        except KeyError:
            pass
        found = self._search(uri)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[uri] = found
        return found

    def _search(self, uri: str) -> RouteMatch[T] | None:
        found = self._match(uri)
        if found is not None and found.uri != uri:
            # Another spelling (escaped) of the canonical URI, which may be one a route
            # fixes (``/vehicle/fl%65et`` is ``/vehicle/fleet``): the route that owns the
            # canonical URI decides, not one whose param took the escaped text (its agent
            # would take the other route's URI, with the wrong class).
            return self._match(found.uri)
        return found

    def _match(self, uri: str) -> RouteMatch[T] | None:
        if not uri.startswith("/"):
            return None
        segments = uri[1:].split("/")
        count = len(segments)
        bucket = self._by_first.get((count, segments[0]))
        if bucket is not None:
            found = _first_match(bucket, segments, uri)
            if found is not None:
                return found
        bucket = self._by_count.get(count)
        if bucket is not None:
            return _first_match(bucket, segments, uri)
        return None

    def resolve(self, uri: str) -> RouteMatch[T]:
        """Like :meth:`lookup`, but raise :class:`NodeNotFoundError` when nothing matches."""
        found = self.lookup(uri)
        if found is None:
            known = ", ".join(pattern.text for pattern, _ in self) or "none"
            raise NodeNotFoundError(f"no route matches {uri!r} (routes: {known})")
        return found

    def get(self, pattern: RoutePattern | str) -> T | None:
        """The target registered under a pattern of the same shape, if any."""
        if isinstance(pattern, str):
            pattern = RoutePattern.parse(pattern)
        entry = self._entries.get(pattern.shape)
        return entry[1] if entry is not None else None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[RoutePattern, T]]:
        """The registered ``(pattern, target)`` pairs, in the order they were added."""
        return iter(list(self._entries.values()))


def _first_match(
    bucket: list[tuple[RoutePattern, T]], segments: list[str], uri: str
) -> RouteMatch[T] | None:
    for pattern, target in bucket:
        found = pattern.match_split(segments)
        if found is not None:
            params, canonical = found
            return RouteMatch(pattern, target, params, uri if canonical else pattern.render(params))
    return None
