"""Op identity and ordering shared by every CRDT.

A :data:`Stamp` is ``(hlc_timestamp, replica_id)``. It is both the op's unique id (one
replica never issues the same timestamp twice) and its position in the total order that
last-writer-wins types resolve conflicts by: timestamp first, then replica id, so two
replicas that write "at the same time" still agree on a winner without talking.
"""

from __future__ import annotations

from typing import Any, TypeAlias

Stamp: TypeAlias = tuple[int, str]
"""``(hlc_timestamp, replica_id)``: an op's unique id and its order."""

ZERO_STAMP: Stamp = (0, "")
"""Orders before every stamp a clock can issue; the state of a never-written register."""

JsonValue: TypeAlias = Any
"""A value that survives a JSON round trip: None, bool, int, float, str, list, dict."""
