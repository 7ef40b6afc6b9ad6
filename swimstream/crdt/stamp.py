"""Op identity and ordering shared by every CRDT.

A :data:`Stamp` is ``(hlc_timestamp, replica_id)``. It is both the op's unique id (one
replica never issues the same timestamp twice) and its position in the total order that
last-writer-wins types resolve conflicts by: timestamp first, then replica id, so two
replicas that write "at the same time" still agree on a winner without talking.
"""

from __future__ import annotations

import math
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


def differs(new: object, old: object) -> bool:
    """Whether a newer write changes what a replica shows: a value unequal to the one
    held, the very container held (see :func:`same_container`), or an equal one that
    reads otherwise as JSON. Python holds ``True == 1 == 1.0``, ``0.0 == -0.0`` and
    ``{"on": 1} == {"on": True}``, which HTTP, links' clients and sinks read as
    ``true``, ``1``, ``1.0``: compared with ``!=`` alone, a write from ``true`` to ``1``
    was no change, and a join went on showing ``true`` while its target showed ``1``."""
    if new != old:
        return True
    if new is old:
        return same_container(new, old)
    return not _spelt_alike(new, old)


def reads_otherwise(new: object, old: object) -> bool:
    """Whether ``new`` reads otherwise than ``old`` as JSON: unequal, or equal and spelt
    otherwise (see :func:`differs`, which also counts the very container held as a
    change; this compares two values, as a join does its entry with a link's)."""
    return new != old or (new is not old and not _spelt_alike(new, old))


def _spelt_alike(new: Any, old: Any) -> bool:
    """Whether two equal values read alike as JSON: the same kinds of number, the same
    sign of zero, the same kinds of object key, all the way down."""
    pending = [(new, old)]
    while pending:
        a, b = pending.pop()
        if a is b:
            continue
        kind = type(a)
        if kind is not type(b):
            if isinstance(a, dict) and isinstance(b, dict):
                kind = dict  # (a subclass reads as any object does)
            elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
                kind = list
            else:
                return False  # (``True`` and ``1``, ``1`` and ``1.0``)
        if kind is float:
            if math.copysign(1.0, a) != math.copysign(1.0, b):
                return False  # (``0.0`` and ``-0.0``)
        elif kind is dict:
            if any(type(key) is not str for key in a) or any(type(key) is not str for key in b):
                # Equal keys of other kinds (``1``, ``True``, ``1.0``) name one entry, and
                # each dict keeps its own: compare them as each spells them.
                spelt = {key: key for key in b}
                for key in a:
                    if not _spelt_alike(key, spelt[key]):
                        return False
            pending.extend([(element, b[key]) for key, element in a.items()])
        elif kind is list or kind is tuple:
            pending.extend(zip(a, b, strict=True))
    return True
