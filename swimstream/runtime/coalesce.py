"""Pending link traffic, coalesced: a slow subscriber gets state, never a backlog.

Between two deliveries to a subscriber, the changes of the lane it links to pile up
here, folded as a CRDT would fold them: a value lane keeps only the newest op, a map
lane the newest op per key (and the newest clear), a counter the highest totals per
writer. The receiver merges what it gets into its replica, so dropping superseded ops
loses nothing it would have kept. The size is bounded by the lane's key count, not by
the update rate.
"""

from __future__ import annotations

from typing import Any, Protocol

from swimstream.crdt import (
    CounterAdd,
    CounterSnapshot,
    MapClear,
    MapPut,
    MapRemove,
    MapSnapshot,
    Op,
    RegisterSet,
    RegisterSnapshot,
    Snapshot,
)


class Pending(Protocol):
    """Changes waiting for delivery on one link."""

    def add(self, op: Op) -> None: ...

    def add_snapshot(self, snapshot: Snapshot) -> None: ...

    def take(self) -> tuple[Snapshot | None, list[Op]]:
        """Everything pending, emptying the buffer."""
        ...


class ValuePending:
    """Keeps the newest write of a value lane (a snapshot is just a write)."""

    __slots__ = ("_op",)

    def __init__(self) -> None:
        self._op: RegisterSet | None = None

    def add(self, op: Op) -> None:
        assert isinstance(op, RegisterSet)
        if self._op is None or op.stamp > self._op.stamp:
            self._op = op

    def add_snapshot(self, snapshot: Snapshot) -> None:
        assert isinstance(snapshot, RegisterSnapshot)
        self.add(RegisterSet(snapshot.stamp, snapshot.value))

    def take(self) -> tuple[Snapshot | None, list[Op]]:
        op, self._op = self._op, None
        return None, ([] if op is None else [op])


class CounterPending:
    """Keeps each writer's highest totals."""

    __slots__ = ("_ops",)

    def __init__(self) -> None:
        self._ops: dict[str, CounterAdd] = {}

    def add(self, op: Op) -> None:
        assert isinstance(op, CounterAdd)
        current = self._ops.get(op.stamp[1])
        if current is None:
            self._ops[op.stamp[1]] = op
        else:
            self._ops[op.stamp[1]] = CounterAdd(
                max(current.stamp, op.stamp),
                current.delta + op.delta,
                max(current.positive, op.positive),
                max(current.negative, op.negative),
            )

    def add_snapshot(self, snapshot: Snapshot) -> None:
        assert isinstance(snapshot, CounterSnapshot)
        for replica, positive, negative in snapshot.totals:
            self.add(CounterAdd((0, replica), 0, positive, negative))

    def take(self) -> tuple[Snapshot | None, list[Op]]:
        ops, self._ops = self._ops, {}
        return None, list(ops.values())


class MapPending:
    """Keeps a sync snapshot, the newest clear, and the newest op per key."""

    __slots__ = ("_clear", "_ops", "_snapshot")

    def __init__(self) -> None:
        self._snapshot: MapSnapshot | None = None
        self._clear: MapClear | None = None
        self._ops: dict[Any, MapPut | MapRemove] = {}

    def add(self, op: Op) -> None:
        if isinstance(op, MapClear):
            if self._clear is None or op.stamp > self._clear.stamp:
                self._clear = op
                self._ops = {k: o for k, o in self._ops.items() if o.stamp > op.stamp}
            return
        assert isinstance(op, MapPut | MapRemove)
        current = self._ops.get(op.key)
        if current is None or op.stamp > current.stamp:
            self._ops[op.key] = op

    def add_snapshot(self, snapshot: Snapshot) -> None:
        assert isinstance(snapshot, MapSnapshot)
        self._snapshot = snapshot  # a newer sync supersedes an undelivered older one

    def take(self) -> tuple[Snapshot | None, list[Op]]:
        snapshot, self._snapshot = self._snapshot, None
        ops: list[Op] = [] if self._clear is None else [self._clear]
        ops.extend(self._ops.values())
        self._clear, self._ops = None, {}
        return snapshot, ops


def pending_for(lane_kind: str) -> Pending:
    """The coalescing buffer for links to a lane of ``lane_kind``."""
    if lane_kind == "counter":
        return CounterPending()
    if lane_kind in ("map", "join_value", "join_map", "demand_map"):
        return MapPending()
    return ValuePending()
