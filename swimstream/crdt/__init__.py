"""Replicated lane state that converges: the pure CRDT core.

Every lane's state is one of these types. The owner agent holds the authoritative
replica; linked agents and instances hold replicas; any replica may write and ship the
op it gets back. ``apply`` is idempotent and order-insensitive, so replicas that have
seen the same set of ops agree, whatever the network did to them on the way.

* :class:`HybridLogicalClock` orders ops causally and close to wall time.
* :class:`LWWRegister` (value lanes), :class:`LWWMap` (map lanes, with tombstones),
  :class:`PNCounter` (counter lanes).
* :func:`encode` / :func:`decode`: the versioned binary form used by the changelog and
  the mesh.

This package does no I/O and imports nothing of swimstream but its exception tree.
"""

from swimstream.crdt.clock import HybridLogicalClock, timestamp_logical, timestamp_millis
from swimstream.crdt.codec import (
    FORMAT_VERSION,
    TAKEN_KINDS,
    Encodable,
    Op,
    Snapshot,
    check_storable,
    decode,
    decode_snapshot,
    encode,
    encode_counter,
    encode_register,
    kind_problem,
)
from swimstream.crdt.counter import CounterAdd, CounterSnapshot, PNCounter
from swimstream.crdt.lww_map import (
    KEY_TYPES,
    LWWMap,
    MapClear,
    MapKey,
    MapOp,
    MapPut,
    MapRemove,
    MapSnapshot,
    bad_key,
    key_order,
    raise_bad_key,
)
from swimstream.crdt.register import LWWRegister, RegisterSet, RegisterSnapshot
from swimstream.crdt.stamp import ZERO_STAMP, JsonValue, Stamp, reads_otherwise

__all__ = [
    "FORMAT_VERSION",
    "KEY_TYPES",
    "TAKEN_KINDS",
    "ZERO_STAMP",
    "CounterAdd",
    "CounterSnapshot",
    "Encodable",
    "HybridLogicalClock",
    "JsonValue",
    "LWWMap",
    "LWWRegister",
    "MapClear",
    "MapKey",
    "MapOp",
    "MapPut",
    "MapRemove",
    "MapSnapshot",
    "Op",
    "PNCounter",
    "RegisterSet",
    "RegisterSnapshot",
    "Snapshot",
    "Stamp",
    "bad_key",
    "check_storable",
    "decode",
    "decode_snapshot",
    "encode",
    "encode_counter",
    "encode_register",
    "key_order",
    "kind_problem",
    "raise_bad_key",
    "reads_otherwise",
    "timestamp_logical",
    "timestamp_millis",
]
