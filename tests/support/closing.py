"""Timing a connector's close while its broker does not answer (test support)."""

from __future__ import annotations

import time
from typing import Protocol


class Closable(Protocol):
    async def close(self, timeout: float | None = None) -> None: ...


async def timed_closes(unbounded: Closable, bounded: Closable, bound: float) -> tuple[float, float]:
    """Seconds ``unbounded.close()`` took, then ``bounded.close(bound)``; printed too."""
    began = time.monotonic()
    await unbounded.close()
    took = time.monotonic() - began
    began = time.monotonic()
    await bounded.close(bound)
    took_bounded = time.monotonic() - began
    print(f"close: {took:.1f} s; close({bound}): {took_bounded:.1f} s")
    return took, took_bounded
