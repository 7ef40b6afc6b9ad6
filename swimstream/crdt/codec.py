"""Binary encoding of CRDT ops and snapshots, for the changelog and the mesh.

Layout: one version byte (:data:`FORMAT_VERSION`), then one msgpack array whose first
element is a type tag. Values and map keys are JSON values encoded natively by msgpack,
which is smaller and faster than JSON text and decodes to the same Python values.

=========  ====  ==========================================================
type       tag   fields after the tag
=========  ====  ==========================================================
RegisterSet  1   ts, replica, value
MapPut       2   ts, replica, key, value
MapRemove    3   ts, replica, key
MapClear     4   ts, replica
CounterAdd   5   ts, replica, delta, positive, negative
RegisterSnapshot 16  ts, replica, value
MapSnapshot      17  cleared_ts, cleared_replica, floor, [[key, ts, replica, value]...],
                     [[key, ts, replica]...]
CounterSnapshot  18  [[replica, positive, negative]...]
=========  ====  ==========================================================

Decoding is strict: a wrong version, tag, arity or field type raises
:class:`~swimstream.errors.CodecError`, and so does anything msgpack itself rejects, so a
corrupt changelog record is reported, never half-applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import msgpack

from swimstream.crdt.counter import CounterAdd, CounterSnapshot, PNCounter
from swimstream.crdt.lww_map import KEY_TYPES, MapClear, MapKey, MapPut, MapRemove, MapSnapshot
from swimstream.crdt.register import LWWRegister, RegisterSet, RegisterSnapshot
from swimstream.crdt.stamp import Stamp
from swimstream.errors import CodecError
from swimstream.text import counted

FORMAT_VERSION = 1
"""The first byte of every encoding; bumped on any incompatible change."""

Op: TypeAlias = RegisterSet | MapPut | MapRemove | MapClear | CounterAdd
Snapshot: TypeAlias = RegisterSnapshot | MapSnapshot | CounterSnapshot
Encodable: TypeAlias = Op | Snapshot

_VERSION_PREFIX = bytes([FORMAT_VERSION])
_MAX_NESTING = 1024
"""Levels of nesting a decoded value may have: msgpack packs at most 1,024 (the
snapshot's own list is one of them)."""

VALUE_NESTING = 1000
"""Levels of nesting a lane's value may have (:func:`check_storable`): a round number
under msgpack's 1,024, whatever the value sits in (a map entry is three levels down in
its lane's snapshot)."""


def _fields(item: Encodable) -> list[Any]:
    if type(item) is RegisterSet:
        return [1, item.stamp[0], item.stamp[1], item.value]
    if type(item) is MapPut:
        return [2, item.stamp[0], item.stamp[1], item.key, item.value]
    if type(item) is MapRemove:
        return [3, item.stamp[0], item.stamp[1], item.key]
    if type(item) is MapClear:
        return [4, item.stamp[0], item.stamp[1]]
    if type(item) is CounterAdd:
        return [5, item.stamp[0], item.stamp[1], item.delta, item.positive, item.negative]
    if type(item) is RegisterSnapshot:
        return _register_snapshot_fields(item.stamp, item.value)
    if type(item) is MapSnapshot:
        return [
            17,
            item.cleared[0],
            item.cleared[1],
            item.floor,
            [[key, stamp[0], stamp[1], value] for key, stamp, value in item.entries],
            [[key, stamp[0], stamp[1]] for key, stamp in item.tombstones],
        ]
    if type(item) is CounterSnapshot:
        return _counter_snapshot_fields([list(total) for total in item.totals])
    raise CodecError(f"cannot encode {type(item).__name__}: not a CRDT op or snapshot")


_pack = msgpack.Packer(use_bin_type=True).pack
"""One packer for every encode: ``packb`` builds a packer per call, four times the cost of
the packing itself. Shared safely: packing holds the GIL throughout (no ``default`` hook
calls back into Python) and resets its buffer when it fails."""

pack_exact = msgpack.Packer(use_bin_type=True, strict_types=True).pack
"""A packer taking only the exact JSON kinds (no tuple, no subclass of dict or list): it
raises TypeError where :data:`_pack` would go on, and else packs the same bytes, with less
work per array (not asked whether it is an ``ExtType``: 16% fewer instructions packing a
register of three fields and an object). Encoders try it first, then ``_pack``."""


def encode(item: Encodable) -> bytes:
    """The versioned binary form of an op or snapshot; raises CodecError for one holding
    a value that would not decode (see :func:`check_storable`)."""
    kind = type(item)
    try:
        if kind is RegisterSet or kind is RegisterSnapshot or kind is MapPut:
            check_storable(item.value)  # type: ignore[union-attr]
        elif kind is MapSnapshot:
            for _key, _stamp, value in item.entries:  # type: ignore[union-attr]
                check_storable(value)
    except TypeError as exc:
        raise CodecError(f"cannot encode {kind.__name__}: {exc}") from exc
    return _packed(_fields(item), kind.__name__)


def _packed(fields: list[Any], kind: str) -> bytes:
    try:
        try:
            return _VERSION_PREFIX + pack_exact(fields)
        except TypeError:  # a tuple or a subclass somewhere: the packer that takes them
            return _VERSION_PREFIX + _pack(fields)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {kind}: {exc}") from exc


SCALAR_KINDS = frozenset({str, float, bool, type(None)})
"""The kinds of value the store takes with no check (see :func:`check_storable`)."""

TAKEN_KINDS = frozenset({*SCALAR_KINDS, dict, list, tuple})
"""The kinds of value a lane takes without a second look (an ``int`` within 64 bits is
taken too): a write of any other kind is refused where it is made
(:func:`kind_problem`), and what a container holds is checked when it is stored
(:func:`check_storable`), where the walk costs once per checkpoint rather than once per
write."""


def kind_problem(value: Any) -> TypeError | None:
    """The error for writing ``value`` to a lane when its own kind is one the store cannot
    hold (bytes, a set, an object, an integer beyond 64 bits), else None."""
    kind = type(value)
    if kind in TAKEN_KINDS or isinstance(value, dict | list | tuple):
        return None
    if kind is int:
        if -(2**63) <= value < 2**64:
            return None
        return TypeError(f"the integer {value} is beyond 64 bits")
    return TypeError(f"{kind.__name__} is not a JSON value: {_short(value)}")


def check_storable(value: Any) -> None:
    """Raise TypeError, naming the part, unless ``value`` is one the store holds and
    gives back: JSON values (a tuple reads back as a list), objects keyed by scalars,
    integers within 64 bits, as deep as :data:`VALUE_NESTING`.

    The encoder calls it, so that nothing is stored that would make its agent
    unloadable: such a value is left out of a checkpoint, and an agent holding it is not
    passivated, each saying why. (Lanes refuse a value of the wrong kind as it is
    written, :func:`kind_problem`, but walk no container there: that would cost every
    write of a small object a fifth of the per-record path.)
    """
    # What lanes mostly hold, checked without the walk's stack and calls (a checkpoint
    # checks every changed value: the walk was two fifths of collecting one): a scalar,
    # or an object of scalars under text keys. Anything else, or a part that may be
    # wrong, takes the walk, which names the part.
    kind = type(value)
    if kind in SCALAR_KINDS:
        return
    if kind is dict:
        for key, element in value.items():
            if type(key) is not str:
                break
            kind = type(element)
            if kind not in SCALAR_KINDS and (
                kind is not int or not _INT_LOW <= element < _INT_HIGH
            ):
                break
        else:
            return
    _walk(value)


_INT_LOW = -(2**63)
_INT_HIGH = 2**64


def _walk(value: Any) -> None:
    """:func:`check_storable`'s walk of every part of ``value``."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= VALUE_NESTING:
                raise TypeError(f"a value nested over {VALUE_NESTING} levels")
            if isinstance(item, dict):
                for key, element in item.items():
                    if type(key) not in KEY_TYPES:
                        raise TypeError(
                            f"an object key must be a JSON scalar, not {type(key).__name__} {key!r}"
                        )
                    if type(key) is int and not -(2**63) <= key < 2**64:
                        raise TypeError(f"the object key {key} is beyond 64 bits")
                    pending.append((element, depth + 1))
            else:
                pending.extend([(element, depth + 1) for element in item])
        else:
            problem = kind_problem(item)  # (a scalar: the same rule as a lane's write)
            if problem is not None:
                raise problem


def _short(item: object) -> str:
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def encode_register(register: LWWRegister, checked: dict[int, Any] | None = None) -> bytes:
    """``encode(register.snapshot())``, without the snapshot object in between: a
    checkpoint encodes every changed value lane, and the snapshot was half the cost.

    ``checked``: the objects (by id) a batch of encodings has checked already, which
    this adds to: a join lane holds the very object of the value lane it joins (the
    towers' devices hold each device's status), and a checkpoint encodes both, where the
    second check of a status was 4,300 instructions and the look-up is some 700. Only
    objects go in (a scalar's check costs less than the look-up); holding them keeps
    their ids from being reused while the batch lasts."""
    value = register._value
    stamp = register._stamp
    try:
        if checked is None or type(value) is not dict:
            check_storable(value)
        elif checked.get(id(value)) is not value:
            check_storable(value)
            checked[id(value)] = value
        try:  # (``_packed`` inline, the fields too: two calls less per changed value lane)
            return _VERSION_PREFIX + pack_exact([16, stamp[0], stamp[1], value])
        except TypeError:
            return _VERSION_PREFIX + _pack([16, stamp[0], stamp[1], value])
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode RegisterSnapshot: {exc}") from exc


def encode_counter(counter: PNCounter) -> bytes:
    """``encode(counter.snapshot())``, without the snapshot object in between."""
    positive, negative = counter._positive, counter._negative
    if len(positive) == 1 and not negative:  # one writer that only added: the usual case
        ((replica, added),) = positive.items()
        try:  # (``_packed([18, [[replica, added, 0]]], ...)``'s bytes, from their parts)
            head = _COUNTER_HEADS.get(replica)
            if head is None:
                head = _counter_head(replica)
            return head + pack_exact(added) + b"\x00"
        except (TypeError, ValueError, OverflowError) as exc:  # a total beyond 64 bits
            raise CodecError(f"cannot encode CounterSnapshot: {exc}") from exc
    totals = [
        [replica, positive.get(replica, 0), negative.get(replica, 0)]
        for replica in sorted(positive.keys() | negative.keys())
    ]
    return _packed(_counter_snapshot_fields(totals), "CounterSnapshot")


_COUNTER_HEADS: dict[str, bytes] = {}
"""Replica id -> the bytes a counter added to by that replica alone starts with: the
version, ``[18, [[replica, `` in msgpack, then come its total and 0. Packing only the
total, a checkpoint encodes such a counter in 1,900 instructions, not 6,700 (a counter
lane changes with most readings)."""


def _counter_head(replica: str) -> bytes:
    """The start of a one-replica counter's encoding (see :data:`_COUNTER_HEADS`)."""
    if len(_COUNTER_HEADS) >= 64:  # (a plane writes as one replica: a few at most)
        _COUNTER_HEADS.clear()
    head = _COUNTER_HEADS[replica] = _VERSION_PREFIX + b"\x92\x12\x91\x93" + _pack(replica)
    return head


def _register_snapshot_fields(stamp: Stamp, value: Any) -> list[Any]:
    return [16, stamp[0], stamp[1], value]


def _counter_snapshot_fields(totals: list[list[Any]]) -> list[Any]:
    return [18, totals]


def decode(data: bytes) -> Encodable:
    """The op or snapshot ``data`` encodes; raises CodecError on anything else."""
    if not data:
        raise CodecError("empty input: no version byte")
    if data[0] != FORMAT_VERSION:
        raise CodecError(f"unknown format version {data[0]} (this build reads {FORMAT_VERSION})")
    try:
        fields = msgpack.unpackb(
            memoryview(data)[1:], raw=False, strict_map_key=False, use_list=True
        )
    except Exception as exc:  # msgpack raises a zoo of types for bad input
        raise CodecError(f"not valid msgpack: {exc}") from exc
    if not isinstance(fields, list) or not fields:
        raise CodecError("expected a non-empty array")
    decoder = _DECODERS.get(fields[0]) if type(fields[0]) is int else None
    if decoder is None:
        raise CodecError(f"unknown type tag {fields[0]!r}")
    try:
        return decoder(fields)
    except CodecError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise CodecError(f"malformed {decoder.__name__[1:]}: {exc}") from exc


def decode_snapshot(data: bytes) -> Snapshot:
    """Like :func:`decode`, but the bytes must hold a snapshot, not an op."""
    item = decode(data)
    if not isinstance(item, RegisterSnapshot | MapSnapshot | CounterSnapshot):
        raise CodecError(f"expected a snapshot, found a {type(item).__name__} op")
    return item


# -- strict field readers ------------------------------------------------------------


def _arity(fields: list[Any], count: int, name: str) -> None:
    if len(fields) != count:
        raise CodecError(f"{name} has {counted(len(fields) - 1, 'field')}, expected {count - 1}")


def _int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise CodecError(f"{what} must be an integer, got {type(value).__name__}")
    return value


def _stamp(ts: Any, replica: Any) -> Stamp:
    if type(ts) is not int or ts < 0:
        raise CodecError(f"timestamp must be a non-negative integer, got {ts!r}")
    if type(replica) is not str:
        raise CodecError(f"replica id must be text, got {type(replica).__name__}")
    return (ts, replica)


def _key(key: Any) -> MapKey:
    if type(key) in KEY_TYPES:
        return key  # type: ignore[no-any-return]
    raise CodecError(f"map key must be a JSON scalar, got {type(key).__name__}")


def _value(value: Any) -> Any:
    """Check a decoded value is JSON-shaped (no bytes; objects keyed by scalars, as map
    lanes are: Python code keys dicts by numbers too, and msgpack keeps them as they
    were), and not absurdly deep.

    Iterative, and as deep as :data:`_MAX_NESTING`: whatever msgpack packed must unpack
    here, or a value a lane took would be stored and then lost when its agent loads.
    """
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        kind = type(item)
        if item is None or kind in (str, int, float, bool):
            continue
        if depth >= _MAX_NESTING:
            raise CodecError("value nested too deeply")
        if kind is list:
            pending.extend((element, depth + 1) for element in item)
        elif kind is dict:
            for key, element in item.items():
                if type(key) not in KEY_TYPES:
                    raise CodecError(f"object keys must be scalars, got {type(key).__name__}")
                pending.append((element, depth + 1))
        else:
            raise CodecError(f"{kind.__name__} is not a JSON value")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if type(value) is not list:
        raise CodecError(f"{what} must be an array, got {type(value).__name__}")
    return value


def _register_set(f: list[Any]) -> RegisterSet:
    _arity(f, 4, "RegisterSet")
    return RegisterSet(_stamp(f[1], f[2]), _value(f[3]))


def _map_put(f: list[Any]) -> MapPut:
    _arity(f, 5, "MapPut")
    return MapPut(_stamp(f[1], f[2]), _key(f[3]), _value(f[4]))


def _map_remove(f: list[Any]) -> MapRemove:
    _arity(f, 4, "MapRemove")
    return MapRemove(_stamp(f[1], f[2]), _key(f[3]))


def _map_clear(f: list[Any]) -> MapClear:
    _arity(f, 3, "MapClear")
    return MapClear(_stamp(f[1], f[2]))


def _counter_add(f: list[Any]) -> CounterAdd:
    _arity(f, 6, "CounterAdd")
    positive, negative = _int(f[4], "positive total"), _int(f[5], "negative total")
    if positive < 0 or negative < 0:
        raise CodecError("counter totals must be non-negative")
    return CounterAdd(_stamp(f[1], f[2]), _int(f[3], "delta"), positive, negative)


def _register_snapshot(f: list[Any]) -> RegisterSnapshot:
    _arity(f, 4, "RegisterSnapshot")
    return RegisterSnapshot(_stamp(f[1], f[2]), _value(f[3]))


def _map_snapshot(f: list[Any]) -> MapSnapshot:
    _arity(f, 6, "MapSnapshot")
    entries = []
    for row in _list(f[4], "entries"):
        row = _list(row, "entry")
        _arity([None, *row], 5, "map entry")
        entries.append((_key(row[0]), _stamp(row[1], row[2]), _value(row[3])))
    tombstones = []
    for row in _list(f[5], "tombstones"):
        row = _list(row, "tombstone")
        _arity([None, *row], 4, "tombstone")
        tombstones.append((_key(row[0]), _stamp(row[1], row[2])))
    return MapSnapshot(
        entries=tuple(entries),
        tombstones=tuple(tombstones),
        cleared=_stamp(f[1], f[2]),
        floor=_int(f[3], "floor"),
    )


def _counter_snapshot(f: list[Any]) -> CounterSnapshot:
    _arity(f, 2, "CounterSnapshot")
    totals = []
    for row in _list(f[1], "totals"):
        row = _list(row, "total")
        _arity([None, *row], 4, "counter total")
        if type(row[0]) is not str:
            raise CodecError("counter replica id must be text")
        positive, negative = _int(row[1], "positive total"), _int(row[2], "negative total")
        if positive < 0 or negative < 0:
            raise CodecError("counter totals must be non-negative")
        totals.append((row[0], positive, negative))
    return CounterSnapshot(tuple(totals))


_DECODERS: dict[int, Callable[[list[Any]], Encodable]] = {
    1: _register_set,
    2: _map_put,
    3: _map_remove,
    4: _map_clear,
    5: _counter_add,
    16: _register_snapshot,
    17: _map_snapshot,
    18: _counter_snapshot,
}
