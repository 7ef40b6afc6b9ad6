"""Waiting on whichever of several things happens first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any


async def first_of(waits: Iterable[Awaitable[Any]], timeout: float) -> None:
    """Return when the first of ``waits`` does, or after ``timeout`` seconds; the rest
    are cancelled. Idle loops sleep so instead of polling."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
