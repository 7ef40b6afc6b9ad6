"""An answer says ``Connection: close`` when its request's body will end the connection.

After an answer went out, aiohttp reads what the handler left of the request body, to
reach the next request on the connection. A body whose framing already failed (a broken
chunk) cannot be skipped: aiohttp closes the connection. An answer that did not say so
told a keep-alive client to send its next request there, and that request met a reset.

So :func:`close_if_body_unskippable`, run as each response is prepared (streams included),
marks the answer ``Connection: close`` when its request's body has not been received to
its end and failed to read, or was never asked for: a client that sent ``Expect:
100-continue`` and got its answer without "100 Continue" (:mod:`~.server` asks only for
a body it would take) may send that body or not, so its next bytes cannot be framed.
Any other body left unread is skipped as it arrives, coded or not: the servers take
bodies as sent and decode only what a handler reads (:mod:`~.body_coding`), so corrupt
gzip no longer ends the connection.
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
    if body.exception() is not None or _not_asked(request):
        response.force_close()
        # aiohttp wrote its Connection header before this hook ran: say it ourselves.
        response.headers[hdrs.CONNECTION] = "close"


def _not_asked(request: web.Request) -> bool:
    """Whether the client waits to be asked for its body and was not (answered at once,
    without "100 Continue"): it may send the body now or never, so what it sends next
    on the connection cannot be told from the body, and the connection must end."""
    expects = request.headers.get(hdrs.EXPECT, "").lower() == "100-continue"
    return expects and not request.get(ASKED_FOR_BODY, False)
