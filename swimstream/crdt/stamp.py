"""Op identity and ordering shared by every CRDT.

A :data:`Stamp` is ``(hlc_timestamp, replica_id)``. It is both the op's unique id (one
replica never issues the same timestamp twice) and its position in the total order that
last-writer-wins types resolve conflicts by: timestamp first, then replica id, so two
replicas that write "at the same time" still agree on a winner without talking.
"""

from __future__ import annotations

from typing import Any, TypeAlias, TypeVar

Stamp: TypeAlias = tuple[int, str]
"""``(hlc_timestamp, replica_id)``: an op's unique id and its order."""

ZERO_STAMP: Stamp = (0, "")
"""Orders before every stamp a clock can issue; the state of a never-written register."""

JsonValue: TypeAlias = Any
"""A value that survives a JSON round trip: None, bool, int, float, str, list, dict."""


new_op = tuple.__new__
"""``new_op(RegisterSet, (stamp, value))`` makes an op as ``RegisterSet(stamp, value)``
does, without the named tuple's generated ``__new__``: a Python function around this
very call, which the lane writes made on every event."""

_Op = TypeVar("_Op", bound=type[tuple[Any, ...]])


def distinct_by_type(cls: _Op) -> _Op:
    """Make an op class (a ``NamedTuple``: ops are made on every lane write, and a tuple
    is made several times faster than a frozen dataclass) equal only to ops of its own
    type, as a dataclass is: ``RegisterSet(s, 1)`` is not ``MapRemove(s, 1)``."""

    def __eq__(self: tuple[Any, ...], other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)

    def __ne__(self: tuple[Any, ...], other: object) -> bool:
        return not __eq__(self, other)

    def __hash__(self: tuple[Any, ...]) -> int:
        return hash((type(self).__name__, tuple.__hash__(self)))

    cls.__eq__ = __eq__  # type: ignore[method-assign]
    cls.__ne__ = __ne__  # type: ignore[assignment,method-assign]
    cls.__hash__ = __hash__  # type: ignore[method-assign]
    return cls


def same_container(new: object, old: object) -> bool:
    """Whether a newer write carries the very object held here: its writer changed it in
    place (in one process a link's replica holds the owner's object), so it may differ
    from what it was, though it equals itself. Told as a change, not swallowed."""
    return new is old and isinstance(new, dict | list)
