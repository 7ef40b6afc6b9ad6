"""Giving back to the system the memory a shard's restore freed (glibc's malloc only).

A hand-over's restore reads the changelog tail another instance wrote (54,000 to
200,000 records in the soak under churn, ``bench/soak_churn.py``, for 36 s away at
2,000 readings/s), holds it until every checkpoint in it is judged, applies it and
frees it. glibc's malloc keeps what is freed in the arena it came from, for later
allocations of the threads attached to that arena. The reader's consumer is new at
every restore, and so are its threads, which glibc attaches to its arenas in turn (up
to 8 per core): each restore left its fetched records' memory in another arena, and
resident memory grew at every hand-over, for good. (The reader also fetches less
ahead now: :data:`connectors.kafka.changelog.PREFETCH_RECORDS`.) ``malloc_trim(0)``
returns the free pages of every arena to the system; they stay mapped, and are taken
back as an arena needs them. In that soak, 5 minutes of hand-overs every minute ended
at 1,011 MB resident, of which a ``malloc_trim`` at the end gave back 420 MB; with
this after each restore, at 616 MB, of which it gave back 12.

What Python's own allocator keeps for small objects it cannot give back: its arenas
(1 MiB each) go back to the system only once every object in one is gone. That is a
high-water mark of the most small objects alive at once, not a growth with the number
of hand-overs: a restore's tail, and the catch-up after a hand-over (agents loaded
beyond ``max_active_agents`` between two passivation passes, those passivated waiting
in the durable store's overlay). In the soak, 479 arenas holding 52 MB once idle, level
over the last 9 of 15 minutes of hand-overs; a heavier peak raises it in a step.

Elsewhere than glibc (musl, macOS) there is no ``malloc_trim``, and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
from collections.abc import Callable

import psutil

log = logging.getLogger("swimstream.memory")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once, on first use; None where there is none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # (the process's own symbols: its libc's)
    except (OSError, AttributeError, TypeError):  # (TypeError: Windows takes no None)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def can_release() -> bool:
    """Whether this process's allocator can give freed memory back (glibc's can)."""
    return _malloc_trim() is not None


async def release_freed_memory() -> bool:
    """Give the free pages of every malloc arena back to the system, in a worker thread:
    it walks every arena, each locked in turn while it does (42 ms to give back 294 MB
    freed by 4 threads, most of it in pieces between live blocks). Whether it could
    (see the module docstring)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    before = _resident()
    await asyncio.to_thread(trim, 0)
    after = _resident()
    log.debug(
        "gave %.1f MB of freed memory back to the system (resident %.1f MB)",
        (before - after) / 2**20,
        after / 2**20,
        extra={"released_bytes": before - after, "resident_bytes": after},
    )
    return True


def _resident() -> int:
    """Resident bytes of this process (for the log line only: 0 where unknown)."""
    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
        return 0
