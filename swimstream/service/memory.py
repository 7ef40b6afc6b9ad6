"""Giving back to the system the memory a shard's restore freed (glibc's malloc only).

A hand-over's restore reads the changelog tail another instance wrote (some 100,000
records for a minute away at 2,000 readings/s), holds it until every checkpoint in it
is judged, applies it and frees it all. glibc's malloc keeps what is freed, in the
arena it came from, for the next allocations of the threads that use that arena: the
records librdkafka fetched were allocated by the reader's own threads, new at every
restore, so a different arena kept them each time (up to 8 per core), and resident
memory grew at every hand-over and never came down. ``malloc_trim(0)`` returns the
free pages of every arena to the system (the pages stay mapped, and are taken again
as the arena needs them).

What Python's allocator keeps for its small objects (its arenas of 1 MiB, given back
only when every object in one is gone) this cannot give back: that is a high-water
mark of the largest restore, which does not grow with the number of hand-overs.

Elsewhere than glibc (musl, macOS) there is no ``malloc_trim``, and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

import psutil

log = logging.getLogger("swimstream.memory")


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # (the process's own symbols: its libc's)
    except (OSError, AttributeError, TypeError):  # (TypeError: Windows takes no None)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def can_release() -> bool:
    """Whether this process's allocator can give freed memory back (glibc's can)."""
    return _TRIM is not None


async def release_freed_memory() -> bool:
    """Give the free pages of every malloc arena back to the system, in a worker thread
    (it walks every arena, each locked in turn, for some milliseconds); whether it could
    (see the module docstring)."""
    trim = _TRIM
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
