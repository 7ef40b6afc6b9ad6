"""Route patterns: the node URIs an agent class answers to.

``/vehicle/:id`` names every vehicle agent; ``/region/:name/zone/:z`` takes two params;
``/world`` is static and names one agent. A pattern matches a URI of the same number of
segments whose fixed segments are equal; each ``:param`` segment captures its (decoded)
value. ``render`` is the inverse and spells values canonically (see
:mod:`swimstream.routing.segments`), so ``match(render(params)) == params`` for every
non-empty string value.

Patterns are parsed once, when an app is configured, into a form that matches without
regular expressions: segment count first, then the fixed segments, then the params.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from swimstream.errors import InvalidRouteError
from swimstream.routing.segments import (
    check_fixed_text,
    is_plain,
    quote_segment,
    split_path,
    unquote_segment,
)


@dataclass(frozen=True, slots=True)
class RoutePattern:
    """A parsed route pattern such as ``/vehicle/:id``; build it with :meth:`parse`.

    ``segments`` holds each segment's fixed text, or ``None`` where a param stands;
    ``params`` the param names in order.
    """

    text: str
    segments: tuple[str | None, ...]
    params: tuple[str, ...]
    # (position, fixed text) and (position, param name), precomputed for match()
    _fixed: tuple[tuple[int, str], ...] = field(repr=False, compare=False)
    _captures: tuple[tuple[int, str], ...] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> RoutePattern:
        """Parse ``text``; raise :class:`InvalidRouteError` saying what is wrong with it."""
        segments: list[str | None] = []
        params: list[str] = []
        for segment in split_path(text):
            if segment.startswith(":"):
                name = segment[1:]
                if not (name.isidentifier() and name.isascii()):
                    raise InvalidRouteError(f"param name {name!r} is not an identifier")
                if name in params:
                    raise InvalidRouteError(f"param ':{name}' appears twice")
                params.append(name)
                segments.append(None)
            else:
                check_fixed_text(segment)
                if segment in (".", ".."):
                    raise InvalidRouteError(f"{segment!r} cannot be a segment")
                segments.append(segment)
        fixed = tuple((i, s) for i, s in enumerate(segments) if s is not None)
        captures = tuple(zip((i for i, s in enumerate(segments) if s is None), params, strict=True))
        return cls(text, tuple(segments), tuple(params), fixed, captures)

    def __str__(self) -> str:
        return self.text

    @property
    def is_static(self) -> bool:
        """Whether the pattern names exactly one node (it has no params)."""
        return not self.params

    @property
    def shape(self) -> tuple[str | None, ...]:
        """What the pattern matches, param names aside: two patterns of one shape conflict."""
        return self.segments

    @property
    def precedence(self) -> tuple[int, ...]:
        """Sort key: of two patterns matching a URI, the one with the smaller key wins.

        Compared segment by segment from the left, a fixed segment beats a param, so
        ``/vehicle/fleet`` wins over ``/vehicle/:id`` and ``/a/:x/c`` over ``/:p/b/c``.
        """
        return tuple(0 if s is not None else 1 for s in self.segments)

    def match(self, uri: str) -> dict[str, str] | None:
        """The params of ``uri`` if this pattern matches it, else ``None``."""
        if not uri.startswith("/"):
            return None
        return self.match_segments(uri[1:].split("/"))

    def match_segments(self, segments: list[str]) -> dict[str, str] | None:
        """:meth:`match` for a URI already split at ``/`` (without the leading empty part)."""
        found = self.match_split(segments)
        return found[0] if found is not None else None

    def match_split(self, segments: list[str]) -> tuple[dict[str, str], bool] | None:
        """The params of a split URI and whether its spelling is surely canonical, or ``None``.

        One pass for both, since the route table needs both for every lookup. The flag is
        true only when every param segment is plain; a segment with escapes, even escapes
        that happen to be canonical, leaves it false and the caller renders the params.
        """
        if len(segments) != len(self.segments):
            return None
        for position, text in self._fixed:
            if segments[position] != text:
                return None
        params: dict[str, str] = {}
        canonical = True
        for position, name in self._captures:
            segment = segments[position]
            if is_plain(segment):
                params[name] = segment
                continue
            value = unquote_segment(segment) if segment else None
            if not value:
                return None
            canonical = False
            params[name] = value
        return params, canonical

    def render(self, params: Mapping[str, str]) -> str:
        """The canonical node URI for ``params`` (extra params are ignored).

        Raises :class:`InvalidRouteError` when a param is missing or empty.
        """
        parts = [segment or "" for segment in self.segments]
        for position, name in self._captures:
            value = params.get(name)
            if not value:
                state = "missing" if value is None else "empty"
                raise InvalidRouteError(f"route {self.text!r}: param {name!r} is {state}")
            try:
                parts[position] = quote_segment(value)
            except UnicodeEncodeError:  # a lone surrogate: no URI spells it
                raise InvalidRouteError(
                    f"route {self.text!r}: param {name!r} is not UTF-8 text"
                ) from None
        return "/" + "/".join(parts)
