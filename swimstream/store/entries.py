"""Map lanes are stored entry by entry; everything else name by name.

A bounded history of 50 readings changes by one or two entries per event; writing the
whole map at each checkpoint would cost 25 times what changed. So a map-like lane's
entry ``k`` is stored under the name ``<lane>:<json of k>`` (its stamp and value, or
nothing once removed, which lets compaction drop it), and the lane's own name holds
only what applies to all its entries: the stamp of its last ``clear``.

:func:`assemble` turns stored rows back into one snapshot per lane, which is what an
agent restores from. Tombstones are not kept: after a restart no op older than the
restart can arrive (links restart too), which is exactly when the CRDT allows them to
be compacted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

import msgpack

from swimstream.crdt import (
    ZERO_STAMP,
    LWWMap,
    MapKey,
    MapSnapshot,
    check_storable,
    decode_snapshot,
    encode,
)
from swimstream.crdt.codec import pack_exact
from swimstream.errors import CodecError

ENTRY_SEPARATOR = ":"


_pack = msgpack.Packer(use_bin_type=True).pack  # shared: see swimstream.crdt.codec


def entry_name(lane: str, key: MapKey) -> str:
    """The stored name of entry ``key`` of map lane ``lane``: one name for keys Python
    holds equal (``1``, ``1.0``, ``True``), the integer's (see :func:`_alias_of`)."""
    if type(key) is int:  # the JSON of an int is its decimal form (25 times faster)
        return f"{lane}{ENTRY_SEPARATOR}{key}"
    if type(key) is str:  # what json.dumps does for a str, without its Python layers
        return f"{lane}{ENTRY_SEPARATOR}{_json_string(key)}"
    alias = _alias_of(key)
    if alias is not None:
        return f"{lane}{ENTRY_SEPARATOR}{alias}"
    return f"{lane}{ENTRY_SEPARATOR}{json.dumps(key, separators=(',', ':'))}"


def _alias_of(key: MapKey) -> int | None:
    """The integer a bool or a whole float key equals, else None.

    A map holds equal keys as one entry, but their JSON differs (``1``, ``1.0``,
    ``true``): named by its own JSON, each kept a row of its own, so a key written as
    ``1`` and later as ``True`` left two rows, and removing it deleted only the second:
    the first came back at the next restore. Named by the integer, they share one row,
    whose value keeps the key as it was last written (:func:`_packed`)."""
    if type(key) is bool:
        return int(key)
    if type(key) is float and key.is_integer() and -(2**63) <= key < 2**64:
        return int(key)
    return None


def _packed(ts: int, replica: str, value: Any, key: MapKey) -> bytes:
    """An entry's stored value; the key too when its name spells it as another type."""
    if type(key) is bool or (type(key) is float and _alias_of(key) is not None):
        return _pack([ts, replica, value, key])
    return _pack([ts, replica, value])


def split_name(name: str) -> tuple[str, MapKey] | None:
    """``(lane, key)`` of an entry name, or None for a plain name."""
    lane, separator, key = name.partition(ENTRY_SEPARATOR)
    if not separator:
        return None
    return lane, json.loads(key)


def encode_entry(
    map_state: LWWMap, key: MapKey, checked: dict[int, Any] | None = None
) -> bytes | None:
    """Entry ``key`` of ``map_state`` as stored (None when the key is absent).
    ``checked``: as :func:`~swimstream.crdt.encode_register` takes it."""
    entry = map_state._entries.get(key)
    if entry is None:
        return None
    (ts, replica), value = entry
    kind = type(key)
    try:
        if isinstance(key, str) and not key.isascii():
            # The row's name holds the key as JSON, which writes anything, but the
            # snapshot its lane is rebuilt into must pack it as UTF-8: a key holding a
            # lone surrogate (``json.loads`` reads ``"\ud800"``), stored, made its
            # agent unloadable. It stays out, as an unstorable value does.
            key.encode()
        if checked is None or type(value) is not dict:
            check_storable(value)
        elif checked.get(id(value)) is not value:
            check_storable(value)
            checked[id(value)] = value
        if kind is int or kind is str:  # named as spelled: no key in the value (the usual)
            try:
                return pack_exact([ts, replica, value])  # (see its docstring)
            except TypeError:
                return _pack([ts, replica, value])
        return _packed(ts, replica, value, key)
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. an integer beyond 64 bits
        raise CodecError(f"map entry {key!r} cannot be stored: {exc}") from exc


def encode_header(map_state: LWWMap) -> bytes:
    """What a map lane's own name holds: the stamp of its last clear."""
    return encode(MapSnapshot((), (), map_state._cleared, 0))


def entry_from_snapshot(snapshot: bytes, key: MapKey) -> bytes | None:
    """One entry, as stored, out of a whole stored map snapshot (None when absent)."""
    return stored_entry(snapshot_entries(snapshot).get(key))


StoredEntry = tuple[MapKey, int, str, Any]
"""An entry of a decoded map snapshot: ``(key as written, ts, replica, value)``."""


def snapshot_entries(snapshot: bytes) -> dict[MapKey, StoredEntry]:
    """The entries of a whole stored map snapshot, by key (keys Python holds equal are
    one entry, as in the map), for :func:`stored_entry` to spell as stored.

    Decoded once for all the entries wanted of it: a passivated agent's changed keys
    are looked up one by one, and decoding the snapshot for each made a checkpoint's
    collect quadratic (a map of 4,000 entries, all changed, kept the instance's cut,
    routing stopped, for half a minute)."""
    decoded = decode_snapshot(snapshot)
    if not isinstance(decoded, MapSnapshot):
        raise CodecError(f"expected a map snapshot, found {type(decoded).__name__}")
    found: dict[MapKey, StoredEntry] = {}
    for key, (ts, replica), value in decoded.entries:
        found.setdefault(key, (key, ts, replica, value))  # (the first, as a scan found it)
    return found


def stored_entry(entry: StoredEntry | None) -> bytes | None:
    """An entry of :func:`snapshot_entries` as stored (None for an absent one)."""
    if entry is None:
        return None
    key, ts, replica, value = entry
    return _packed(ts, replica, value, key)


def assemble(rows: Mapping[str, bytes]) -> dict[str, bytes]:
    """Stored rows (plain names and entries) as one value per name: entries become
    their lane's map snapshot, filtered by that lane's last clear."""
    plain: dict[str, bytes] = {}
    entries: dict[str, list[tuple[Any, tuple[int, str], Any]]] = {}
    for name, value in rows.items():
        split = split_name(name)
        if split is None:
            plain[name] = value
            continue
        lane, key = split
        try:
            ts, replica, entry, *written = msgpack.unpackb(value, raw=False, strict_map_key=False)
        except Exception as exc:
            raise CodecError(f"stored entry {name!r} is unreadable: {exc}") from exc
        if written:  # the key as last written, where the name spells it as an integer
            key = written[0]
        entries.setdefault(lane, []).append((key, (int(ts), str(replica)), entry))
    for lane, items in entries.items():
        cleared = ZERO_STAMP
        header = plain.get(lane)
        if header is not None:
            decoded = decode_snapshot(header)
            if isinstance(decoded, MapSnapshot):
                cleared = decoded.cleared
        kept = tuple(sorted((e for e in items if e[1] > cleared), key=lambda e: e[1]))
        plain[lane] = encode(MapSnapshot(kept, (), cleared, 0))
    return plain


def map_names(lanes: Iterable[str], rows: Mapping[str, bytes]) -> set[str]:
    """The stored names that belong to the given map lanes (their entries and header)."""
    wanted = set(lanes)
    return {name for name in rows if (split_name(name) or (name, None))[0] in wanted}
