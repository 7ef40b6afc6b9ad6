"""What changed since the last checkpoint: the durable store's view of the plane.

The tracker is the plane's :class:`~swimstream.runtime.store.StateObserver`, and its
:attr:`~StateTracker.dirty` and :attr:`~StateTracker.dirty_keys` are the notes stateful
lanes keep themselves (:class:`~swimstream.agent.context.ChangeNotes`). On the hot path
that is one dict store per lane change, made by the lane itself when no op is made for
it: the lane object itself is the key, so nothing is encoded or copied until the
checkpoint, and a lane changed a thousand times between two checkpoints is written once
(analyze, then store). Links and timers are noted by node URI.

A changelog record has a size limit (Kafka: the producer's ``message.max.bytes``): a name
whose record would pass it is left out of the checkpoint, as a value the store cannot
encode is (:func:`_unstorable`). Produced, it failed the checkpoint, which stopped the
instance, and the restart replayed the record that made it: one record of 600 KB, kept
as a map entry under a key of its own text, stopped the instance at every start.

Map-like lanes are noted per entry (see :mod:`swimstream.store.entries`): a change of
one key writes that key, not the map. At a checkpoint, :meth:`StateTracker.collect`
turns the notes into changelog entries: a live lane's current snapshot (or changed map
entries), an agent's links and timers as the plane holds them, and, for an agent
passivated since (its lane objects gone), its values as the store kept them at
passivation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from json.encoder import encode_basestring_ascii as _json_string
from typing import TYPE_CHECKING, Any

from swimstream.agent import CounterLane, ValueLane
from swimstream.crdt import (
    FORMAT_VERSION,
    LWWMap,
    MapPut,
    MapRemove,
    MapSnapshot,
    Op,
    check_storable,
    decode_snapshot,
    encode_counter,
    encode_register,
)
from swimstream.crdt.codec import SCALAR_KINDS, pack_exact
from swimstream.errors import CodecError
from swimstream.runtime.agent_record import LINKS, TIMERS
from swimstream.store.entries import (
    ENTRY_SEPARATOR,
    encode_entry,
    encode_header,
    entry_name,
    snapshot_entries,
    split_name,
    stored_entry,
)

if TYPE_CHECKING:
    from swimstream.agent import Agent, Lane
    from swimstream.crdt import PNCounter
    from swimstream.runtime import Plane
    from swimstream.store.changelog import ChangelogRow
    from swimstream.store.durable import DurableAgentStore

log = logging.getLogger("swimstream.store")


class StateTracker:
    """Notes what changed; hands the changes over at each checkpoint."""

    __slots__ = (
        "_counter_head",
        "_held",
        "_largest",
        "_passivated_entries",
        "_plane",
        "_shard_of",
        "_store",
        "dirty",
        "dirty_keys",
    )

    def __init__(
        self,
        store: DurableAgentStore,
        shard_of: Callable[[str], int],
        largest: int | None = None,
    ) -> None:
        """``largest``: the most bytes a changelog record's key and value may hold
        together (None: no limit)."""
        self.dirty: dict[Any, None] = {}
        """Lane objects changed whole, or (node uri, name) of links, timers and a
        passivated agent's lanes. Rebound at each collect: lanes read it each time."""
        self.dirty_keys: dict[Any, dict[Any, Any]] = {}
        """Map-like Lane object -> its changed keys, each to its spelling last written:
        keys Python holds equal (0 and -0.0, 1, 1.0 and True) are one entry, which the
        lane holds as last written, and a set kept the first (stored, and restored so)."""
        self._store = store
        self._shard_of = shard_of
        self._plane: Plane | None = None
        self._held: frozenset[int] = frozenset()
        self._largest = largest
        self._passivated_entries: dict[tuple[str, str], dict[Any, Any]] = {}
        """(node uri, map lane) -> a passivated agent's stored entries, decoded once
        for the collect under way (see ``entries.snapshot_entries``)."""
        self._counter_head: tuple[str | None, bytes] = (None, b"")
        """(replica, the bytes its counters' encodings start with): see
        :func:`_counter_head`."""

    def attach(self, plane: Plane) -> None:
        """Follow ``plane``'s changes from now on."""
        self._plane = plane
        plane.track_state(self)

    def __len__(self) -> int:
        return len(self.dirty) + len(self.dirty_keys)

    # -- StateObserver -------------------------------------------------------------------

    def lane_changed(self, lane: Lane, op: Op) -> None:
        """A lane's change that made an op (it had links or sinks, or a callback that
        wanted one): noted as the lane notes one that made none."""
        kind = type(op)
        if kind is MapPut or kind is MapRemove:
            # (Both hold the key second: ``op[1]`` is an index, ``op.key`` a look-up of
            # the named tuple's descriptor, generic in CPython 3.11: 130 instructions a
            # change of a map lane.)
            key = op[1]  # type: ignore[misc]
            keys = self.dirty_keys.get(lane)
            if keys is None:
                self.dirty_keys[lane] = {key: key}
            else:
                keys[key] = key
        else:
            self.dirty[lane] = None

    def links_changed(self, node_uri: str) -> None:
        self.dirty[(node_uri, LINKS)] = None

    def timers_changed(self, node_uri: str) -> None:
        self.dirty[(node_uri, TIMERS)] = None

    def passivating(self, agent: Agent) -> None:
        """The agent's lanes are about to go: note them by name instead."""
        dirty = self.dirty
        node = agent.node_uri
        for lane in agent.bound_lanes():
            if lane in dirty:
                del dirty[lane]
                dirty[(node, lane.name)] = None
            keys = self.dirty_keys.pop(lane, None)
            if keys is not None:
                for key in keys:
                    dirty[(node, entry_name(lane.name, key))] = None

    # -- shards moving to another instance ------------------------------------------------

    def hold(self, shards: Iterable[int]) -> None:
        """Keep the changes of ``shards`` out of checkpoints until :meth:`release` or
        :meth:`forget`: their partitions were revoked, and the group resumes them at
        the last checkpoint's cut, so a later checkpoint must not store state holding
        records routed after it (the next owner applies those records again)."""
        self._held = self._held | frozenset(shards)

    @property
    def held(self) -> frozenset[int]:
        """The shards whose changes checkpoints leave out now (see :meth:`hold`)."""
        return self._held

    def release(self, shards: Iterable[int]) -> None:
        """Checkpoint the changes of ``shards`` again (their partitions came back)."""
        self._held = self._held - frozenset(shards)

    def forget(self, select: Callable[[str], bool]) -> None:
        """Drop every change noted for the agents ``select`` names: their state is no
        longer this instance's to store (their shard moved away, or is restored)."""
        self.dirty = {key: None for key in self.dirty if not select(_node_of(key))}
        self.dirty_keys = {
            lane: keys for lane, keys in self.dirty_keys.items() if not select(lane._agent.node_uri)
        }

    # -- checkpoints ---------------------------------------------------------------------

    def collect(self) -> list[ChangelogRow]:
        """Everything that changed since the last collect, as changelog entries.

        The hot part of a checkpoint (one entry per changed name): shards are looked up
        once per agent, a value the store cannot encode costs a try, not a call, and
        entries are plain tuples (:data:`~swimstream.store.changelog.ChangelogRow`).
        Each entry's size is checked as it is made (see :func:`_too_large`): a pass of
        its own over the entries was a thirteenth of collecting them."""
        assert self._plane is not None
        plane = self._plane
        dirty, self.dirty = self.dirty, {}
        changed_keys, self.dirty_keys = self.dirty_keys, {}
        if self._held:
            dirty, changed_keys = self._keep_held(dirty, changed_keys)
        entries: list[ChangelogRow] = []
        append = entries.append
        checked: dict[int, Any] = {}  # values checked storable (see encode_register)
        shards: dict[str, int] = {}
        shard_of = self._shard_of
        largest = _NO_LIMIT if self._largest is None else self._largest
        counter_replica, counter_head = self._counter_head
        value: bytes | None
        for key in dirty:
            kind = type(key)
            if kind is ValueLane:  # the usual: encode_register's own usual case inline
                node = key._agent.node_uri
                register = key._register
                held = register._value
                try:
                    held_kind = type(held)
                    if held_kind is dict:
                        if checked.get(id(held)) is not held:
                            check_storable(held)
                            checked[id(held)] = held
                    elif held_kind not in SCALAR_KINDS:
                        raise TypeError  # (anything else: the encoder's own way, below)
                    stamp = register._stamp
                    value = _REGISTER_HEAD + pack_exact([16, stamp[0], stamp[1], held])
                except (TypeError, ValueError, OverflowError):
                    try:
                        value = encode_register(register, checked)
                    except CodecError as exc:
                        _unstorable(node, key._spec.name, exc)
                        continue
                rows = None
            elif kind is CounterLane:  # the usual: added to by this plane alone
                node = key._agent.node_uri
                counter = key._counter
                positive = counter._positive
                added = positive.get(counter_replica)
                value = None
                if added is not None and len(positive) == 1 and not counter._negative:
                    try:
                        value = counter_head + pack_exact(added) + b"\x00"
                    except (TypeError, ValueError, OverflowError):
                        value = None  # (beyond 64 bits: the encoder says so, below)
                if value is None:
                    try:
                        value = encode_counter(counter)
                    except CodecError as exc:
                        _unstorable(node, key._spec.name, exc)
                        continue
                    counter_replica, counter_head = self._counter_head = _counter_head(
                        counter, value, self._counter_head
                    )
                rows = None
            elif kind is tuple:  # (node uri, name): links, timers, a passivated lane
                node, name = key
                rows = _unless_unstorable(node, name, self._by_name, plane, node, name)
            else:
                node = key._agent.node_uri
                whole_map = getattr(key, "_map", None)
                if whole_map is None:  # another value-like lane: one row
                    try:
                        value = key.encoded()
                    except CodecError as exc:
                        _unstorable(node, key._spec.name, exc)
                        continue
                    rows = None
                else:
                    rows = _unless_unstorable(
                        node, key._spec.name, _map_rows, key._spec.name, whole_map
                    )
            shard = shards.get(node)
            if shard is None:
                shard = shards[node] = shard_of(node)
            if rows is None:
                name = key._spec.name
                if len(node) + len(name) + len(value) >= largest:  # type: ignore[arg-type]
                    _too_large(node, name, value, largest)
                    continue
                append((node, name, value, shard))
                continue
            for name, value in rows:
                if len(node) + len(name) + len(value or b"") >= largest:
                    _too_large(node, name, value, largest)
                    continue
                append((node, name, value, shard))
        for lane, keys in changed_keys.items():
            if lane in dirty:  # written whole above: what a clear removed goes
                _append_cleared(lane, keys, shards, shard_of, append)
                continue
            node = lane._agent.node_uri
            shard = shards.get(node)
            if shard is None:
                shard = shards[node] = shard_of(node)
            room = largest - len(node)
            entries_of: LWWMap = lane._map
            stored = entries_of._entries
            lane_name = lane._spec.name
            for map_key in keys.values():
                kind = type(map_key)  # (entry_name's two usual cases inline: a call less)
                if kind is int:
                    name = f"{lane_name}{ENTRY_SEPARATOR}{map_key}"
                elif kind is str:
                    name = f"{lane_name}{ENTRY_SEPARATOR}{_json_string(map_key)}"
                else:
                    name = entry_name(lane_name, map_key)
                entry = stored.get(map_key)
                if entry is None:
                    value = None  # removed (as encode_entry says of an absent key)
                else:
                    # encode_entry's usual cases inline: an integer or ASCII text key (a
                    # history of readings, a join of node URIs) and a value with nothing
                    # to check, or an object checked already (a join holds its value
                    # lane's very object). Anything else goes the whole way.
                    value = None
                    held = entry[1]
                    held_kind = type(held)
                    if (kind is int or (kind is str and map_key.isascii())) and (
                        held_kind in SCALAR_KINDS
                        or (held_kind is dict and checked.get(id(held)) is held)
                    ):
                        stamp = entry[0]
                        try:
                            value = pack_exact([stamp[0], stamp[1], held])
                        except (TypeError, ValueError, OverflowError):
                            value = None
                    if value is None:
                        try:
                            value = encode_entry(entries_of, map_key, checked)
                        except CodecError as exc:
                            _unstorable(node, name, exc)
                            continue
                if len(name) + len(value or b"") >= room:
                    _too_large(node, name, value, largest)
                    continue
                append((node, name, value, shard))
        self._passivated_entries.clear()  # (the overlay changes before the next collect)
        return entries

    def _keep_held(
        self, dirty: dict[Any, None], changed_keys: dict[Any, dict[Any, Any]]
    ) -> tuple[dict[Any, None], dict[Any, dict[Any, Any]]]:
        """Split off the changes of held shards: they stay noted for a later collect
        (and a passivated agent's, in the store's overlay)."""
        held, shard_of = self._held, self._shard_of
        collected: dict[Any, None] = {}
        kept: set[str] = set()
        for key in dirty:
            if shard_of(_node_of(key)) in held:
                self.dirty[key] = None
                if type(key) is tuple:
                    kept.add(key[0])
            else:
                collected[key] = None
        self._store.keep(kept)
        entries: dict[Any, dict[Any, Any]] = {}
        for lane, keys in changed_keys.items():
            if shard_of(lane._agent.node_uri) in held:
                self.dirty_keys[lane] = keys
            else:
                entries[lane] = keys
        return collected, entries

    def _by_name(self, plane: Plane, node: str, name: str) -> list[tuple[str, bytes | None]]:
        """The current stored values of one noted name (an agent not in memory is read
        from what the store kept at passivation)."""
        if name == TIMERS:
            return [(name, plane.timers_of(node))]
        if name == LINKS and plane.is_active(node):
            return [(name, plane.links_of(node))]
        split = split_name(name)
        if split is not None:
            lane, key = split
            entries = self._passivated_entries.get((node, lane))
            if entries is None:
                snapshot = self._store.passivated_value(node, lane)
                entries = {} if snapshot is None else snapshot_entries(snapshot)
                self._passivated_entries[node, lane] = entries
            return [(name, stored_entry(entries.get(key)))]
        value = self._store.passivated_value(node, name)
        if value is not None and name != LINKS:
            decoded = decode_snapshot(value)
            if isinstance(decoded, MapSnapshot):  # a cleared map: header and every entry
                return _map_rows(name, LWWMap.from_snapshot(decoded, "store"))
        return [(name, value)]


def _node_of(key: Any) -> str:
    """The agent a noted change belongs to: ``(node uri, name)`` or a lane object."""
    return key[0] if type(key) is tuple else key._agent.node_uri  # type: ignore[no-any-return]


def _unless_unstorable(
    node: str, name: str, rows: Callable[..., Sequence[tuple[str, bytes | None]]], *args: Any
) -> Sequence[tuple[str, bytes | None]]:
    """``rows(*args)``, or nothing when the value cannot be encoded (an integer beyond 64
    bits): the checkpoint goes on without it, and says so, rather than stop the instance
    (the value lives on in memory, and is stored again at its next storable change)."""
    try:
        return rows(*args)
    except CodecError as exc:
        _unstorable(node, name, exc)
        return []


def _unstorable(node: str, name: str, exc: CodecError) -> None:
    # A name holds its map key, and the error may too: a key of 600 KB made every
    # checkpoint log a line of megabytes.
    name = _shortened(name)
    log.error(
        "%s %s is not stored by this checkpoint: %s",
        node,
        name,
        _shortened(str(exc), 300),
        extra={"node": node, "lane": name},
    )


def _shortened(text: str, most: int = 120) -> str:
    """``text``, or its start and how long it is when it is over ``most`` characters."""
    if len(text) <= most:
        return text
    return f"{text[:most]}... ({len(text):,} characters)"


_REGISTER_HEAD = bytes([FORMAT_VERSION])
"""What :func:`~swimstream.crdt.encode_register` puts before a register's fields, which
collect packs itself for a value lane holding an object or a scalar (the usual case):
its call and branches cost some 500 of the 14,700 machine instructions of a towers
status row (callgrind). Everything else goes through the encoder, and tests hold the
two to the same bytes."""


def _counter_head(
    counter: PNCounter, encoded: bytes, known: tuple[str | None, bytes]
) -> tuple[str | None, bytes]:
    """What a counter added to by one replica alone encodes as, before its total:
    ``(replica, head)``, read off ``encoded`` (the encoder's bytes for ``counter``), or
    ``known`` when ``counter`` is not such a counter.

    A plane writes as one replica, so nearly every counter lane that changes encodes as
    ``head + total + 0`` (see :func:`~swimstream.crdt.encode_counter`); collect packs
    only the total then, without the encoder's call: a towers count row took 6,000
    machine instructions instead of 8,100 (callgrind). The head is taken from the
    encoder's own output, and only when the encoder's bytes are exactly head, total and
    zero: anything else keeps the encoder."""
    positive = counter._positive
    if len(positive) != 1 or counter._negative:
        return known
    ((replica, added),) = positive.items()
    try:
        total = pack_exact(added)
    except (TypeError, ValueError, OverflowError):
        return known
    head = encoded[: len(encoded) - len(total) - 1]
    if head + total + b"\x00" != encoded:
        return known
    return replica, head


_NO_LIMIT = 1 << 62
"""The size a changelog record stays under without a limit (none is that large)."""


def _too_large(node: str, name: str, value: bytes | None, largest: int) -> None:
    """Say why an entry is left out: its changelog record (key ``<node>#<name>`` and
    value) would pass ``largest`` bytes (see the module doc). Node URIs and entry names
    are ASCII (quoted, JSON-escaped), so their lengths are bytes."""
    size = len(node) + len(name) + 1 + len(value or b"")
    what = f"its changelog record would be {size:,} bytes"
    _unstorable(node, name, CodecError(f"{what}, over the {largest:,} it may have"))


def _append_cleared(
    lane: Any,
    keys: dict[Any, Any],
    shards: dict[str, int],
    shard_of: Callable[[str], int],
    append: Callable[[ChangelogRow], None],
) -> None:
    """The removals of a map lane written whole (it was cleared): each noted key it
    no longer holds (``MapLane._note_cleared``), whose stored entry must go, as a
    removed key's does, rather than stay stored behind the header that hides it."""
    node = lane._agent.node_uri
    held = lane._map._entries
    shard = shards.get(node)
    if shard is None:
        shard = shards[node] = shard_of(node)
    for map_key in keys.values():
        if map_key not in held:
            append((node, entry_name(lane._spec.name, map_key), None, shard))


def _map_rows(name: str, state: LWWMap) -> list[tuple[str, bytes | None]]:
    rows: list[tuple[str, bytes | None]] = [(name, encode_header(state))]
    rows += [(entry_name(name, key), encode_entry(state, key)) for key in state]
    return rows
