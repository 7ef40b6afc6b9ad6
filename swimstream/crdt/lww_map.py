"""Last-writer-wins map with tombstones: the replicated state of a map lane.

Each key behaves as its own LWW register, and a removed key leaves a tombstone (the
remove's stamp) so that a put older than the remove, arriving late, cannot bring the key
back. ``clear`` is one op with one stamp: it voids every write older than itself, so it
costs O(entries) to apply but O(1) to remember.

Tombstones grow with removed keys, and a bounded map lane removes a key at every write
once full: kept for ever, they would grow without end. So a replica forgets the
tombstones older than :data:`TOMBSTONE_TTL_MS` (in hybrid-logical time, behind the
newest time it has seen) once they outnumber its live entries, as Cassandra purges
tombstones after ``gc_grace_seconds``: a remove keeps a late put of its key out for at
least half a minute, where an op waits in a mailbox for seconds at most. Links deliver
each replica's ops in order and a link's sync comes from the owner's current state (a
replica drops what that state no longer holds), so only an op delayed by longer than
that could bring a key back. Where a timestamp is known to be *stable* (every replica
has seen every op before it), :meth:`LWWMap.compact` drops the tombstones below it and
raises a floor under which ops are ignored as duplicates.

``take(n)`` and ``drop(n)`` (the WARP map commands) are not ops of their own: the
replica that receives them turns them into removes of the keys they cut, in key order,
so the result converges like any other remove.

A tombstone guards against a late op of another writer, and only replicas write (a
link's write goes through to its owner): an owner whose lane no link follows has no
one to guard against. So a bounded lane's eviction leaves no tombstone while no link
follows the lane (:meth:`LWWMap.evict`, :meth:`LWWMap.forget`); a link opened later syncs
from the state as it is, which does not hold the key. (A write a link made just before
it closed, still waiting in the owner's mailbox, then lands as any write would, rather
than lose to the eviction: the key is back, and a bounded lane evicts another key for
it, with ``on_remove``. The state stays one: no replica is left to disagree.)

Entries iterate in the order they were last written on this replica, which gives the
bounded map lane (keep the newest N) its oldest entry in O(1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from time import time
from typing import Any, NamedTuple, NoReturn, TypeAlias

from swimstream.crdt.clock import LOGICAL_BITS, HybridLogicalClock
from swimstream.crdt.stamp import (
    ZERO_STAMP,
    JsonValue,
    Stamp,
    differs,
    distinct_by_type,
    new_op,
)

MapKey: TypeAlias = str | int | float | bool | None
"""Map keys are JSON scalars, so they hash, encode and order predictably."""


KEY_TYPES = frozenset({str, int, float, bool, type(None)})
"""The types a map key may have: JSON scalars, which is what replicas, the store and the
changelog can carry (a tuple would come back a list, which no dict can hold)."""


TOMBSTONE_TTL_MS = 30_000
"""How long, at least, a replica remembers a removed key (see the module docstring)."""

TOMBSTONES_KEPT = 64
"""Tombstones a replica keeps however old (beyond its live entries' count) before
looking for old ones to forget: a map that rarely removes never looks."""


def bad_key(key: object) -> bool:
    """Whether ``key`` cannot be a map key: not a JSON scalar, an integer beyond 64 bits
    (msgpack cannot store it: the whole lane was then left out of every checkpoint), or
    NaN (equal to nothing, itself included: every put of it made another entry, and no
    remove, no replica, no restored copy could ever find one again)."""
    kind = type(key)
    if kind is str:
        return False
    if kind is int:
        return not -(2**63) <= key < 2**64  # type: ignore[operator]
    return kind not in KEY_TYPES or key != key


def raise_bad_key(key: object) -> NoReturn:
    """Refuse a key when it is written, rather than when a restart cannot read it back.

    Called also where hashing the key failed: this message replaces "unhashable type",
    not chained to it."""
    if type(key) is int:
        raise TypeError(f"map key {key} is beyond 64 bits") from None
    if type(key) is float:
        raise TypeError("map key must not be NaN: it equals no key, itself included") from None
    raise TypeError(
        f"map key must be a JSON scalar (str, int, float, bool or None), got"
        f" {type(key).__name__}: {key!r}"
    ) from None


class MapPut(NamedTuple):
    """Bind ``key`` to ``value`` unless a newer op on that key (or a clear) exists."""

    stamp: Stamp
    key: MapKey
    value: JsonValue


class MapRemove(NamedTuple):
    """Remove ``key`` unless a newer put exists; leaves a tombstone."""

    stamp: Stamp
    key: MapKey


class MapClear(NamedTuple):
    """Remove every entry written before this op."""

    stamp: Stamp


distinct_by_type(MapPut)
distinct_by_type(MapRemove)
distinct_by_type(MapClear)

MapOp: TypeAlias = MapPut | MapRemove | MapClear


@dataclass(frozen=True, slots=True)
class MapSnapshot:
    """A map's whole state: live entries, tombstones, the last clear and the floor."""

    entries: tuple[tuple[MapKey, Stamp, JsonValue], ...]
    tombstones: tuple[tuple[MapKey, Stamp], ...]
    cleared: Stamp = ZERO_STAMP
    floor: int = 0


def key_order(key: MapKey) -> tuple[int, Any]:
    """Sort key that orders mixed key types: null, booleans, numbers, then text."""
    if key is None:
        return (0, 0)
    if isinstance(key, bool):
        return (1, key)
    if isinstance(key, int | float):
        return (2, key)
    return (3, key)


class LWWMap:
    """One replica of a last-writer-wins map.

    ``replica_id`` must be unique among writers and not reused after a loss of state.
    """

    __slots__ = (
        "_cleared",
        "_clock",
        "_entries",
        "_floor",
        "_tombstone_limit",
        "_tombstones",
        "replica_id",
    )

    def __init__(self, replica_id: str, clock: HybridLogicalClock | None = None) -> None:
        self.replica_id = replica_id
        self._clock = clock if clock is not None else HybridLogicalClock()
        self._entries: dict[MapKey, tuple[Stamp, JsonValue]] = {}
        # Created on the first remove: most maps never remove, and an empty dict per
        # map lane is a real cost across a million agents.
        self._tombstones: dict[MapKey, Stamp] | None = None
        self._tombstone_limit = TOMBSTONES_KEPT
        """Past this many tombstones, the old ones are forgotten (:meth:`_forget_old`)."""
        self._cleared: Stamp = ZERO_STAMP
        self._floor = 0

    # -- reading ---------------------------------------------------------------------

    def get(self, key: MapKey, default: JsonValue = None) -> JsonValue:
        """The value bound to ``key``, or ``default``."""
        entry = self._entries.get(key)
        return default if entry is None else entry[1]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[MapKey]:
        return iter(self._entries)

    def keys(self) -> list[MapKey]:
        """The live keys, oldest write first."""
        return list(self._entries)

    def values(self) -> list[JsonValue]:
        """The live values, oldest write first."""
        return [entry[1] for entry in self._entries.values()]

    def items(self) -> list[tuple[MapKey, JsonValue]]:
        """The live ``(key, value)`` pairs, oldest write first."""
        return [(key, entry[1]) for key, entry in self._entries.items()]

    def to_dict(self) -> dict[MapKey, JsonValue]:
        """The visible state as a plain dict."""
        return {key: entry[1] for key, entry in self._entries.items()}

    def stamp_of(self, key: MapKey) -> Stamp | None:
        """Stamp of the write that holds ``key``, or None when it is absent."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def oldest_key(self) -> MapKey:
        """The key written longest ago on this replica; KeyError when empty."""
        for key in self._entries:
            return key
        raise KeyError("oldest_key() of an empty map")

    @property
    def tombstone_count(self) -> int:
        """How many removed keys are remembered (shrinks with :meth:`compact`)."""
        return 0 if self._tombstones is None else len(self._tombstones)

    # -- writing here ----------------------------------------------------------------

    def put(self, key: MapKey, value: JsonValue) -> MapPut:
        """Bind ``key`` here and return the op that carries the write."""
        return new_op(MapPut, (self.put_unseen(key, value), key, value))

    def put_unseen(self, key: MapKey, value: JsonValue) -> Stamp:
        """:meth:`put` for a replica whose changes nothing follows (no link, no store):
        the same entry, stamped alike, but no op; returns the write's stamp. Making the
        op and freeing it was some 1,600 machine instructions a write (the towers app
        has two such a reading, a device's history and its tower's join: 68,490 to
        65,219)."""
        clock = self._clock  # (``HybridLogicalClock.now``'s usual case inline)
        if clock.ticked or time() * 1000.0 < clock._millis_end:
            clock._last = ts = clock._last + 1
        else:
            ts = clock.now()
        stamp = (ts, self.replica_id)
        # A fresh stamp beats every entry and tombstone: no comparisons, no change test.
        entries = self._entries
        if key in entries:
            del entries[key]  # re-insert at the end: iteration order is write order
        else:
            kind = type(key)  # (``bad_key`` inline: once per new key)
            if kind is int:
                # (Bounds of one digit first, as ``CounterLane.add`` does: CPython 3.11
                # compares 2**63 with anything through the generic path.)
                if not (-0x3FFF_FFFF < key < 0x3FFF_FFFF or -(2**63) <= key < 2**64):  # type: ignore[operator]
                    raise_bad_key(key)
            elif kind is not str and (kind not in KEY_TYPES or key != key):
                raise_bad_key(key)
            if self._tombstones:
                self._tombstones.pop(key, None)
        entries[key] = (stamp, value)
        return stamp

    def remove(self, key: MapKey) -> MapRemove:
        """Remove ``key`` here (present or not) and return the op."""
        stamp = (self._clock.now(), self.replica_id)
        self._apply_remove(stamp, key)
        return new_op(MapRemove, (stamp, key))

    def evict(self, key: MapKey) -> MapRemove:
        """Remove the present ``key`` here and return the op, leaving no tombstone: a
        bounded lane's eviction when no replica follows the lane (see the module
        docstring), whose op only sinks and the store see."""
        stamp = (self._clock.now(), self.replica_id)
        del self._entries[key]
        return new_op(MapRemove, (stamp, key))

    def forget(self, key: MapKey) -> None:
        """Drop the present ``key``: no op, no stamp, no tombstone (:meth:`evict` for a
        lane that neither a replica nor a sink follows). Once a bounded lane is full,
        each write evicts; the tombstones of the evictions, each kept at least 30 s, were
        up to 602 for a towers device written ten times a second, and keeping them was
        some 4,000 machine instructions of a reading once the histories are full (60,766
        to 56,746)."""
        del self._entries[key]

    def clear(self) -> MapClear:
        """Remove every entry here and return the op."""
        stamp = (self._clock.now(), self.replica_id)
        self._apply_clear(stamp)
        return MapClear(stamp)

    def take(self, count: int) -> list[MapRemove]:
        """Keep the first ``count`` keys in key order; returns the removes of the rest."""
        ordered = sorted(self._entries, key=key_order)
        return [self.remove(key) for key in ordered[max(count, 0) :]]

    def drop(self, count: int) -> list[MapRemove]:
        """Remove the first ``count`` keys in key order; returns the removes."""
        ordered = sorted(self._entries, key=key_order)
        return [self.remove(key) for key in ordered[: max(count, 0)]]

    # -- replication -----------------------------------------------------------------

    def apply(self, op: MapOp) -> bool:
        """Apply a (possibly remote, late or repeated) op; True when the visible map changed."""
        stamp = op.stamp
        if stamp <= self._cleared or stamp[0] < self._floor:
            return False
        if stamp[0] > self._clock.last:
            self._clock.observe(stamp[0])
        if type(op) is MapPut:
            return self._apply_put(stamp, op.key, op.value)
        if type(op) is MapRemove:
            return self._apply_remove(stamp, op.key)
        if type(op) is MapClear:
            return self._apply_clear(stamp)
        raise TypeError(f"not a map op: {op!r}")

    def _apply_put(self, stamp: Stamp, key: MapKey, value: JsonValue) -> bool:
        entries = self._entries
        current = entries.get(key)
        if current is not None:
            if stamp <= current[0]:
                return False
            del entries[key]  # re-insert at the end: iteration order is write order
            entries[key] = (stamp, value)
            # (``!=`` first: the usual change, told without a call)
            return bool(value != current[1]) or differs(value, current[1])
        tombstones = self._tombstones
        if tombstones is not None:
            tombstone = tombstones.get(key)
            if tombstone is not None:
                if stamp <= tombstone:
                    return False
                del tombstones[key]
        entries[key] = (stamp, value)
        return True

    def _apply_remove(self, stamp: Stamp, key: MapKey) -> bool:
        tombstones = self._tombstones
        if tombstones is None:
            tombstones = self._tombstones = {}
        current = self._entries.get(key)
        if current is not None:
            if stamp <= current[0]:
                return False
            del self._entries[key]
            tombstones[key] = stamp
            if len(tombstones) > self._tombstone_limit:
                self._forget_old()
            return True
        tombstone = tombstones.get(key)
        if tombstone is None or stamp > tombstone:
            tombstones[key] = stamp
            if len(tombstones) > self._tombstone_limit:
                self._forget_old()
        return False

    def _forget_old(self) -> None:
        """Forget the tombstones older than :data:`TOMBSTONE_TTL_MS`; look again only
        once there are twice as many left (or more than the live entries): amortized,
        a remove pays a constant share of the scans."""
        assert self._tombstones is not None
        horizon = self._clock.last - (TOMBSTONE_TTL_MS << LOGICAL_BITS)
        kept = {key: stamp for key, stamp in self._tombstones.items() if stamp[0] >= horizon}
        self._tombstones = kept
        self._tombstone_limit = max(TOMBSTONES_KEPT, len(self._entries), 2 * len(kept))

    def _apply_clear(self, stamp: Stamp) -> bool:
        self._cleared = stamp
        doomed = [key for key, entry in self._entries.items() if entry[0] < stamp]
        for key in doomed:
            del self._entries[key]
        # A tombstone older than the clear says nothing the clear does not.
        if self._tombstones:
            self._tombstones = {k: s for k, s in self._tombstones.items() if s > stamp}
        return bool(doomed)

    def replace_before(self, owner: MapSnapshot, before: int) -> bool:
        """Take ``owner`` (the whole state of the replica every write goes through) in
        place of what this replica holds from before HLC time ``before``; True when the
        visible map changed.

        A merge keeps whatever is newer, and what this replica holds from before may be
        newer than anything the owner has and yet never reach it: a replica restored
        from storage holds keys the owner removed since, whose tombstones are gone; an
        owner restored from an older checkpoint lost writes its replicas saw (a put, a
        remove, a clear), and its older stamps would lose to them for good. So entries,
        tombstones and a clear from before ``before`` give way to the owner's state;
        what was written here since is the owner's to see yet, and merges."""
        visible = self.to_dict()
        self._entries = {k: e for k, e in self._entries.items() if e[0][0] >= before}
        if self._tombstones:
            self._tombstones = {k: s for k, s in self._tombstones.items() if s[0] >= before}
        if self._cleared[0] < before:
            self._cleared = ZERO_STAMP
        self._floor = 0  # (the merge takes the owner's)
        self.merge(owner)
        return self.to_dict() != visible

    def compact(self, stable_before: int) -> int:
        """Forget tombstones older than HLC time ``stable_before``; returns how many.

        Call only when every replica has seen every op older than ``stable_before``:
        ops below that time are ignored from now on, as duplicates.
        """
        if stable_before <= self._floor:
            return 0
        self._floor = stable_before
        if not self._tombstones:
            return 0
        before = len(self._tombstones)
        self._tombstones = {k: s for k, s in self._tombstones.items() if s[0] >= stable_before}
        return before - len(self._tombstones)

    def snapshot(self) -> MapSnapshot:
        """The whole state, immutable."""
        return MapSnapshot(
            entries=tuple((key, stamp, value) for key, (stamp, value) in self._entries.items()),
            tombstones=tuple(self._tombstones.items()) if self._tombstones else (),
            cleared=self._cleared,
            floor=self._floor,
        )

    @classmethod
    def from_snapshot(
        cls,
        snapshot: MapSnapshot,
        replica_id: str,
        clock: HybridLogicalClock | None = None,
    ) -> LWWMap:
        """A replica holding ``snapshot``'s state, writing as ``replica_id``."""
        replica = cls(replica_id, clock)
        replica.merge(snapshot)
        return replica

    def merge(self, other: LWWMap | MapSnapshot) -> bool:
        """Fold another replica's whole state into this one; True when the visible map changed."""
        snapshot = other.snapshot() if isinstance(other, LWWMap) else other
        changed = False
        # Ops first, under this replica's floor; only then adopt the higher floor, so a
        # remove the other side compacted cannot be skipped here while its put lingers.
        if snapshot.cleared > self._cleared:
            changed |= self.apply(MapClear(snapshot.cleared))
        for key, stamp in snapshot.tombstones:
            changed |= self.apply(MapRemove(stamp, key))
        for key, stamp, value in snapshot.entries:
            changed |= self.apply(MapPut(stamp, key, value))
        self.compact(snapshot.floor)
        return changed
