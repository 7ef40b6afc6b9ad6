"""Whether a client takes what is written to it: progress, not the whole write, is timed.

An answer or a stream's write is given the time of :func:`~.sse.stalled_after` to be
taken by its client, or the connection is dropped: a client that stopped reading would
otherwise hold the connection, its handler and the write in memory for as long as it
keeps the connection open. Timing the whole write dropped a client that reads all along
but slowly (a big lane's state over a slow link: 12 MB at 2 MB/s, with 1 s to take it),
and logged that it "took nothing"; its EventSource reconnected to the same sync and the
same end, for good. So the time runs from the last bytes the client took: each time
what is buffered for it has shrunk, the deadline moves on. What is buffered counts the
kernel's send queue too (``TIOCOUTQ``, where the platform has it): the transport hands
the kernel more only once half its send buffer, megabytes, was taken, so its own buffer
alone stands still for seconds while a slow client reads.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
from collections.abc import Awaitable

CHECKS_PER_DEADLINE = 4
"""How often, within one deadline, whether the client took anything is looked at."""


async def taken_within(
    transport: asyncio.BaseTransport | None, seconds: float, write: Awaitable[None]
) -> None:
    """Await ``write``; TimeoutError once the client of ``transport`` took nothing of
    what is buffered for it for ``seconds`` (a ``transport`` that is gone: the whole
    write gets ``seconds``)."""
    if not isinstance(transport, asyncio.WriteTransport):
        async with asyncio.timeout(seconds):
            await write
        return
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(seconds) as deadline:
        buffered = _buffered(transport)
        interval = seconds / CHECKS_PER_DEADLINE

        def look() -> None:
            nonlocal buffered
            now = _buffered(transport)
            if now < buffered:  # the client took some: it is reading
                deadline.reschedule(loop.time() + seconds)
            buffered = now
            checks[0] = loop.call_later(interval, look)

        checks = [loop.call_later(interval, look)]
        try:
            await write
        finally:
            checks[0].cancel()


def _buffered(transport: asyncio.WriteTransport) -> int:
    """Bytes written to ``transport`` that its client has not taken yet (as far as known)."""
    buffered = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        except (OSError, ValueError):  # (closed, or not a socket that has a send queue)
            return buffered
        buffered += struct.unpack("i", queued)[0]
    return buffered
