"""Path segments of node URIs: which characters they hold and how values are quoted.

A node URI is ``/`` followed by non-empty segments. Route patterns put fixed text in some
segments and parameters in others; values that fill parameters come from outside (record
keys, payload fields, user code), so they are percent-encoded on the way in and decoded on
the way out. Quoting is canonical — one spelling per value — because the URI's bytes are
also what an agent is stored and sharded under: ``/vehicle/a%2Fb`` and a hand-written
spelling of the same value must not become two agents.

The canonical form encodes every byte except the RFC 3986 unreserved characters
(letters, digits, ``-._~``), plus the dots of the segments ``.`` and ``..`` so that no
value can walk out of its segment when the URI passes through an HTTP path.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from swimstream.errors import InvalidRouteError

# Characters a fixed segment of a pattern or template may hold: RFC 3986 "pchar" without
# ':' (it marks a parameter), '%' (fixed text is never encoded) and the braces of
# template placeholders. Keeping braces out is what lets a template be matched against
# patterns by rendering its placeholders as themselves.
_FIXED_TEXT = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=@]+")

# A value that needs no quoting (the common case, tested first because it is cheap);
# "." and ".." match too and are handled apart.
_plain_match = re.compile(r"[A-Za-z0-9\-._~]+").fullmatch


def is_plain(segment: str) -> bool:
    """Whether ``segment`` is its own canonical encoding: unreserved characters only."""
    return _plain_match(segment) is not None and segment != "." and segment != ".."


def quote_segment(value: str) -> str:
    """The canonical encoding of ``value`` as one URI path segment.

    ``value`` must not be empty (an empty segment has no place in a node URI).
    """
    if _plain_match(value) is not None:
        if value == "." or value == "..":
            return value.replace(".", "%2E")
        return value
    return quote(value, safe="")


def unquote_segment(segment: str) -> str | None:
    """The value a quoted segment holds (the inverse of :func:`quote_segment`).

    ``None`` when the percent-escapes do not decode to UTF-8 text, or the segment holds
    text that has no UTF-8 (a lone surrogate): no value quotes to it.
    """
    try:
        if not segment.isascii():
            segment.encode("utf-8")  # (a lone surrogate: UnicodeEncodeError)
        return unquote(segment, errors="strict") if "%" in segment else segment
    except UnicodeError:  # (either way)
        return None


def check_fixed_text(text: str) -> None:
    """Raise :class:`InvalidRouteError` unless ``text`` may stand as fixed route text."""
    if _FIXED_TEXT.fullmatch(text) is None:
        bad = sorted({ch for ch in text if _FIXED_TEXT.fullmatch(ch) is None})
        shown = " ".join(repr(ch) for ch in bad)
        raise InvalidRouteError(f"{text!r} holds characters a route cannot hold: {shown}")


def split_path(text: str) -> list[str]:
    """The segments of a pattern or template, checked to start with ``/`` and hold no empty one.

    Error messages leave out ``text`` itself: whoever reports them names what was parsed
    (a configuration key path, say).
    """
    if not text.startswith("/"):
        raise InvalidRouteError(f"{text!r} must start with '/'")
    segments = text[1:].split("/")
    for position, segment in enumerate(segments, start=1):
        if not segment:
            raise InvalidRouteError(f"segment {position} of {text!r} is empty")
    return segments
