"""Small helpers for the wording of log lines, health checks and messages.

A leaf like :mod:`swimstream.errors`: it imports nothing of swimstream, so every layer
(and the connectors) may use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

PartitionKey = TypeVar("PartitionKey", bound=tuple[str, int])


def counted(count: int, noun: str, plural: str | None = None, *, grouped: bool = False) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one.

    ``counted(1, "partition")`` is ``"1 partition"``, ``counted(3, "agent type")``
    ``"3 agent types"``; pass ``plural`` where adding an ``s`` is wrong. Log lines
    mostly say one of a thing ("caught up with 1 partition"), where a fixed plural
    reads as a mistake. ``grouped`` writes the count with thousands separators
    (``"12,000 records"``), for counts that grow large, such as records read.
    """
    number = f"{count:,}" if grouped else str(count)
    return f"{number} {noun if count == 1 else plural or noun + 's'}"


def partition_list(partitions: Iterable[tuple[str, int]]) -> str:
    """``orders[0, 3], payments[1]`` for (topic, partition) pairs."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return ", ".join(f"{topic}{sorted(parts)}" for topic, parts in sorted(by_topic.items()))


def offset_list(offsets: Mapping[PartitionKey, int]) -> str:
    """``orders[0]@12, orders[3]@40`` for offsets by (topic, partition)."""
    return ", ".join(
        f"{topic}[{partition}]@{offset}" for (topic, partition), offset in sorted(offsets.items())
    )


def error_text(error: BaseException) -> str:
    """``str(error)``, or what can be said of it when that raises: a user's exception
    class whose ``__str__`` reads a missing attribute must not turn the report of its
    failure into a failure of the reporter (the scheduler's loop, a dead letter)."""
    try:
        return str(error)
    except Exception:
        try:
            return repr(error)
        except Exception:
            return f"<{type(error).__name__} (its text could not be read)>"
