"""Garbage-collector settings for a long-running stream processor.

Each event allocates a handful of short-lived objects (ops, stamps, mailbox items)
while the heap holds a large, long-lived population of agents. CPython's default
young-generation threshold (700 allocations) then runs a collection every hundred or so
events, and the older generations get traversed far more often than they change.
Raising the thresholds, and freezing what start-up allocated, is what long-running
Python services commonly do; with a million agents in memory it about doubled the
commands a second (README, "Garbage collection"). The service calls :func:`tune_gc` at
start; a library user may too.
Nothing here runs on import.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 50
OLD_THRESHOLD = 100


def tune_gc(freeze: bool = True) -> tuple[int, int, int]:
    """Raise the collection thresholds (and freeze the start-up heap); returns the old ones."""
    previous = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    if freeze:
        gc.collect()
        gc.freeze()
    return previous
