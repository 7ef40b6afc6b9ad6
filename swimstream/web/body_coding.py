"""A request body's ``Content-Encoding``, undone within the body limit.

aiohttp undoes a body's coding as its bytes arrive, whether or not a handler reads the
body, and with no bound on what it decodes to: 20 MB of gzip (20 GB of zeros) took the
instance's event loop, every agent and source with it, for 10 s of CPU, from any client
of the web port, though the request was answered 413 or 405 at once. So the servers take
bodies as they were sent (``auto_decompress`` off: aiohttp then skips a body nobody reads
as cheaply as a plain one), and a handler that reads a body decodes it here, stopping as
soon as it outgrows ``max_body_size``.

gzip and deflate are taken (deflate zlib-wrapped, as RFC 9110 says, or raw, as some
clients send it); any other coding is refused with 415, as RFC 9110 asks, rather than
read as plain bytes.
"""

from __future__ import annotations

import zlib

CODINGS = ("gzip", "x-gzip", "deflate")
"""The codings a body may be sent in (besides none, or ``identity``)."""


class UnsupportedCoding(ValueError):
    """A ``Content-Encoding`` this server does not undo (the message names it)."""


class BodyNotDecoded(ValueError):
    """A body that does not decode as its ``Content-Encoding`` says."""


class DecodedTooLarge(ValueError):
    """A body that decodes to more than the limit."""


def coding_of(header: str | None) -> str | None:
    """The coding ``header`` (a ``Content-Encoding`` value) names, None for none."""
    coding = (header or "").strip().lower()
    if coding in ("", "identity"):
        return None
    if coding not in CODINGS:
        raise UnsupportedCoding(
            f"Content-Encoding {header!r} is not taken: send the body as it is, or as "
            "gzip or deflate"
        )
    return coding


def decoded(body: bytes, coding: str, limit: int) -> bytes:
    """``body`` undone from ``coding``; DecodedTooLarge past ``limit`` bytes (found
    while decoding, so that no more than ``limit`` is ever made), BodyNotDecoded when
    it is not that coding, is cut short or has bytes after its end."""
    if not body:
        return body  # (nothing was coded)
    if coding == "deflate":
        # RFC 1950's header names method 8 in its low bits; a raw stream has none.
        wbits = zlib.MAX_WBITS if body[0] & 0x0F == 8 else -zlib.MAX_WBITS
    else:
        wbits = 16 + zlib.MAX_WBITS
    parts: list[bytes] = []
    room = limit
    rest = body
    while rest:
        decoder = zlib.decompressobj(wbits)
        try:
            part = decoder.decompress(rest, room + 1)
        except zlib.error as exc:
            raise BodyNotDecoded(f"it does not decode as {coding}: {exc}") from None
        if len(part) > room or decoder.unconsumed_tail:
            raise DecodedTooLarge(f"it decodes to more than {limit} bytes")
        if not decoder.eof:
            raise BodyNotDecoded(f"its {coding} stream stops before its end: was it cut short?")
        parts.append(part)
        room -= len(part)
        rest = decoder.unused_data
        if rest and coding == "deflate":
            raise BodyNotDecoded("it has bytes after the end of its deflate stream")
        # (gzip: RFC 1952 lets members follow one another, and gzip -c a b writes so.)
    return b"".join(parts)
