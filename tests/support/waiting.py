"""Waiting in async tests for what other tasks and threads do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str | None = None
) -> None:
    """Poll ``predicate`` until it holds; after ``timeout`` seconds, TimeoutError, or an
    AssertionError naming ``what`` when given."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if predicate():
                    return
                await asyncio.sleep(0.01)  # effects of other tasks: nothing to wait on
    except TimeoutError:
        if what is None:
            raise
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None
