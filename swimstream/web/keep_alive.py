"""An answer says ``Connection: close`` when its request's body will end the connection.

After an answer went out, aiohttp reads what the handler left of the request body, to
reach the next request on the connection. It undoes the ``Content-Encoding`` as it reads
(the parser decodes while it frames), so a body that does not decode, corrupt gzip,
cannot be skipped: aiohttp closes the connection. An answer that did not say so told a
keep-alive client to send its next request there, and that request met a reset.

So :func:`close_if_body_unskippable`, run as each response is prepared (streams included),
marks the answer ``Connection: close`` when its request's body has not been received and
decoded to its end and is coded, or already failed to read. The corrupt part may arrive
only after the answer, and reading it first would hold back an answer that does not need
the body, so a coded body left unread closes even when its rest would have decoded: a
reconnect for a rare request, never a reset. A body received whole (a small gzip body
comes with its headers) or one sent without coding, which aiohttp skips as it arrives,
leaves the connection open, unless it was never asked for: a client that sent ``Expect:
100-continue`` and got its answer without "100 Continue" (:mod:`~.server` asks only for
a body it would take) may send that body or not, so its next bytes cannot be framed.
"""

from __future__ import annotations

from aiohttp import hdrs, web

ASKED_FOR_BODY = web.RequestKey("swimstream_asked_for_body", bool)
"""Set on a request whose ``Expect: 100-continue`` was answered "100 Continue"."""


async def close_if_body_unskippable(request: web.Request, response: web.StreamResponse) -> None:
    """Say ``Connection: close`` on ``response`` if ``request``'s body will end the connection."""
    body = request.content
    if body.is_eof():
        return
    coded = hdrs.CONTENT_ENCODING in request.headers
    if body.exception() is not None or coded or _not_asked(request):
        response.force_close()
        # aiohttp wrote its Connection header before this hook ran: say it ourselves.
        response.headers[hdrs.CONNECTION] = "close"


def _not_asked(request: web.Request) -> bool:
    """Whether the client waits to be asked for its body and was not (answered at once,
    without "100 Continue"): it may send the body now or never, so what it sends next
    on the connection cannot be told from the body, and the connection must end."""
    expects = request.headers.get(hdrs.EXPECT, "").lower() == "100-continue"
    return expects and not request.get(ASKED_FOR_BODY, False)
