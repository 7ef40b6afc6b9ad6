"""How one change of a lane looks as JSON, for everything outside the process.

Lane sinks, HTTP event streams and dashboards all show changes, not CRDT ops, so they
share one mapping (the JSON form of WARP's events): a value or command lane's change is
the new value; a map lane's is ``{"update": key, "value": v}``, ``{"remove": key}`` or
``{"clear": true}``; a counter's is its new count.
"""

from __future__ import annotations

from typing import Any

from swimstream.agent.lane import Lane
from swimstream.crdt import CounterAdd, MapClear, MapPut, MapRemove, Op, RegisterSet


def change_to_json(lane: Lane, op: Op) -> Any:
    """The JSON form of ``op``, a change of ``lane`` that was just applied."""
    if isinstance(op, RegisterSet):
        return op.value
    if isinstance(op, MapPut):
        return {"update": op.key, "value": op.value}
    if isinstance(op, MapRemove):
        return {"remove": op.key}
    if isinstance(op, MapClear):
        return {"clear": True}
    if isinstance(op, CounterAdd):
        return lane.to_json()
    raise TypeError(f"not a lane change: {op!r}")
