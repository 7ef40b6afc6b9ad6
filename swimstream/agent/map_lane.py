"""Map lanes: a keyed collection, replicated as a last-writer-wins map.

With ``max_entries`` the lane keeps the newest N keys: each write that grows it past N
removes the key written longest ago (firing ``on_remove`` and streaming the remove),
so a per-device history stays bounded however long the device lives. Only the owner
enforces the bound; replicas follow its removes. The eviction comes before the write's
``on_update``, so that callback sees the lane within its bound, and one that raises
cannot leave it over the bound (stored and synced so): the owner's callbacks run
``on_remove`` of the evicted key, then ``on_update`` of the new one. (Replicas get the
put first, then the remove, in the order the ops stream.)

Commands from outside (WARP ``@update``/``@remove``/``@clear``/``@take``/``@drop``,
HTTP POST, ``agent.command``) are dicts: ``{"update": key, "value": v}``,
``{"remove": key}``, ``{"clear": true}``, ``{"take": n}``, ``{"drop": n}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from swimstream.agent.lane import F, Lane
from swimstream.crdt import (
    TAKEN_KINDS,
    LWWMap,
    MapClear,
    MapKey,
    MapPut,
    MapRemove,
    MapSnapshot,
    Op,
    Snapshot,
    raise_bad_key,
)
from swimstream.errors import CallbackError, DefinitionError

if TYPE_CHECKING:
    from swimstream.agent.context import AgentContext

K = TypeVar("K", bound=MapKey)
V = TypeVar("V")


class MapLane(Lane, Generic[K, V]):
    """A keyed collection; ``on_update(self, key, new, old)``, ``on_remove(self, key, old)``."""

    kind: ClassVar[str] = "map"
    CALLBACKS: ClassVar[dict[str, tuple[int, bool]]] = {
        "on_update": (4, False),
        "on_remove": (3, False),
    }

    __slots__ = ("_map", "_max_entries", "_on_remove", "_on_update")

    def __init__(self, max_entries: int | None = None) -> None:
        super().__init__(max_entries=max_entries)
        if max_entries is not None and max_entries < 1:
            raise DefinitionError(f"max_entries must be at least 1, got {max_entries}")

    def on_update(self, fn: F) -> F:
        """Decorate ``fn(self, key, new, old)``: runs after a key is put (old is None if new)."""
        return self._register_callback("on_update", fn)

    def on_remove(self, fn: F) -> F:
        """Decorate ``fn(self, key, old)``: runs after a key is removed, cleared or evicted."""
        return self._register_callback("on_remove", fn)

    def _setup(self, context: AgentContext) -> None:
        spec = self._spec
        self._max_entries: int | None = spec.options["max_entries"]
        self._map = LWWMap(context.replica_id, context.hlc)
        self._on_update: Callable[..., Any] | None = spec.callbacks.get("on_update")
        self._on_remove: Callable[..., Any] | None = spec.callbacks.get("on_remove")

    # -- reading -----------------------------------------------------------------------

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value at ``key``, or ``default``."""
        return self._map.get(key, default)  # type: ignore[no-any-return]

    def __getitem__(self, key: K) -> V:
        entry = self._map._entries.get(key)
        if entry is None:
            raise KeyError(key)
        return entry[1]  # type: ignore[no-any-return]

    # (The dunders read the map's entries directly: ``len(self._map)`` would run
    # ``LWWMap.__len__`` through its C slot, a Python frame of its own, some 400
    # machine instructions on top of the one ``len(lane)`` itself costs.)

    def __contains__(self, key: object) -> bool:
        return key in self._map._entries

    def __len__(self) -> int:
        return len(self._map._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self._map._entries)  # type: ignore[arg-type]

    def keys(self) -> list[K]:
        """The keys, oldest write first."""
        return self._map.keys()  # type: ignore[return-value]

    def values(self) -> list[V]:
        """The values, oldest write first."""
        return self._map.values()

    def items(self) -> list[tuple[K, V]]:
        """The ``(key, value)`` pairs, oldest write first."""
        return self._map.items()  # type: ignore[return-value]

    # -- writing -----------------------------------------------------------------------

    def put(self, key: K, value: V) -> None:
        """Bind ``key`` to ``value``, stream it, then run ``on_update``.

        Raises TypeError for a value of a kind the store cannot hold (``kind_problem``)."""
        entries = self._map._entries
        try:
            current = entries.get(key)
        except TypeError:  # unhashable: a list or an object, as a JSON command can name
            raise_bad_key(key)
        kind = type(value)
        if kind not in TAKEN_KINDS and (
            kind is not int or not -(2**63) <= value < 2**64  # type: ignore[operator]
        ):
            self._refuse_kind(value)
        old = None if current is None else current[1]
        # (Links, observers, then nothing: the usual cases tested as often as ever.)
        if self._uplinks:
            self._emit(self._map.put(key, value))
        elif self._observers:
            if self._notes is None:
                self._emit(self._map.put(key, value))
            else:  # only the store observes: no op either (``ChangeNotes``)
                # (``_JoinLane._put`` holds a copy of this: one method of ``Lane`` for both cost
                # 1,100 instructions a durable towers reading, its attribute reads'
                # caches missing as the two classes take turns in it; 1,500 in memory
                # for the whole branch)
                self._map.put_unseen(key, value)
                changed = self._notes.dirty_keys
                keys = changed.get(self)
                if keys is None:
                    changed[self] = {key: key}
                else:
                    keys[key] = key  # (the spelling last written: see ``dirty_keys``)
        else:  # nothing to send the op to: none is made
            self._map.put_unseen(key, value)
        if self._max_entries is not None and len(entries) > self._max_entries:
            self._evict()  # before on_update: see the module's docstring
        on_update = self._on_update
        if on_update is not None:
            try:
                on_update(self._agent, key, value, old)
            except CallbackError:
                raise
            except Exception as exc:
                raise self._failed("on_update") from exc

    __setitem__ = put

    def remove(self, key: K) -> None:
        """Remove ``key`` (if present), stream it, then run ``on_remove``."""
        try:
            entry = self._map._entries.get(key)
        except TypeError:  # unhashable, as in put
            raise_bad_key(key)
        if entry is None:
            return
        self._removed(self._map.remove(key), key, entry[1])

    def __delitem__(self, key: K) -> None:
        if key not in self._map._entries:
            raise KeyError(key)
        self.remove(key)

    def clear(self) -> None:
        """Remove every key; ``on_remove`` runs for each."""
        removed = self._map.items()
        op = self._map.clear()
        self._note_cleared([key for key, _ in removed])
        self._emit(op)
        for key, old in removed:
            self._fire_remove(key, old)

    def take(self, count: int) -> None:
        """Keep the first ``count`` keys in key order, removing the rest."""
        self._remove_ops(lambda: self._map.take(count))

    def drop(self, count: int) -> None:
        """Remove the first ``count`` keys in key order."""
        self._remove_ops(lambda: self._map.drop(count))

    def _note_cleared(self, keys: list[Any]) -> None:
        """Note the keys a clear removed among the durable store's changes, as removes
        are: their stored entries go. The clear's own note (the lane's header, its
        stamp) only hides them, and they stayed stored until written again: a lane
        keyed by time and cleared now and then kept every key it ever held."""
        notes = self._agent._context.change_notes()
        if notes is None or not keys:
            return
        noted = notes.dirty_keys.get(self)
        if noted is None:
            noted = notes.dirty_keys[self] = {}
        for key in keys:
            noted.setdefault(key, key)

    def _remove_ops(self, make_ops: Callable[[], list[MapRemove]]) -> None:
        # Every remove is made at once: all are streamed before the first ``on_remove``,
        # as ``clear`` streams its op first, so one that raises cannot leave the rest
        # removed here and kept by the replicas.
        before = self._map.to_dict()
        ops = make_ops()
        for op in ops:
            self._emit(op)
        for op in ops:
            self._fire_remove(op.key, before[op.key])

    def _evict(self) -> None:
        # (Once a bounded lane is full, every put of a new key evicts: the map's entries
        # are read directly, as in the dunders above, and an op is made only for links
        # or sinks, as ``put`` makes one.)
        assert self._max_entries is not None
        map_ = self._map
        entries = map_._entries
        while len(entries) > self._max_entries:
            key = map_.oldest_key()
            old = entries[key][1]
            if self._uplinks:  # replicas: the tombstone keeps their late writes of it out
                self._emit(map_.remove(key))
            elif self._observers and self._notes is None:  # sinks: an op, no tombstone
                self._emit(map_.evict(key))
            else:
                map_.forget(key)
                if self._notes is not None:  # only the store follows: noted as in put
                    keys = self._notes.dirty_keys.setdefault(self, {})
                    keys[key] = key
            if self._on_remove is not None:
                self._fire_remove(key, old)

    def _removed(self, op: MapRemove, key: Any, old: Any) -> None:
        self._emit(op)
        self._fire_remove(key, old)

    def _fire_remove(self, key: Any, old: Any) -> None:
        on_remove = self._on_remove
        if on_remove is not None:
            try:
                on_remove(self._agent, key, old)
            except CallbackError:
                raise
            except Exception as exc:
                raise self._failed("on_remove") from exc

    # -- replication -------------------------------------------------------------------

    @property
    def stateful(self) -> bool:
        return True

    def snapshot(self) -> MapSnapshot:
        return self._map.snapshot()

    def _restore(self, snapshot: Snapshot) -> None:
        assert isinstance(snapshot, MapSnapshot)
        self._map.merge(snapshot)

    def to_json(self) -> Any:
        return self._map.to_dict()

    def _command(self, value: Any) -> None:
        apply_map_command(self, value)

    def _apply_remote(self, op: Op) -> None:
        assert isinstance(op, MapPut | MapRemove | MapClear)
        before = self._map.to_dict() if isinstance(op, MapClear) else None
        key = None if isinstance(op, MapClear) else op.key
        old = None if key is None else self._map.get(key)
        if not self._map.apply(op):
            return
        self._emit(op)
        if isinstance(op, MapPut):
            if self._max_entries is not None and len(self._map) > self._max_entries:
                self._evict()  # before on_update, as in put
            if self._on_update is not None:
                try:
                    self._on_update(self._agent, op.key, op.value, old)
                except CallbackError:  # (another lane's, raised inside: reported as its own)
                    raise
                except Exception as exc:
                    raise self._failed("on_update") from exc
        elif isinstance(op, MapRemove):
            self._fire_remove(op.key, old)
        else:
            assert before is not None
            self._note_cleared(list(before.keys() - self._map.to_dict().keys()))
            for removed in before.keys() - self._map.to_dict().keys():
                self._fire_remove(removed, before[removed])


def apply_map_command(lane: MapLane[Any, Any], command: Any) -> None:
    """Apply a map command dict (the JSON form of WARP's map deltas) to ``lane``."""
    if not isinstance(command, dict):
        raise ValueError(
            f"a command to map lane {lane.name!r} must be an object like "
            '{"update": key, "value": v} or {"remove": key}, got ' + type(command).__name__
        )
    if "update" in command:
        lane.put(command["update"], command.get("value"))
    elif "remove" in command:
        lane.remove(command["remove"])
    elif command.get("clear"):
        lane.clear()
    elif "take" in command:
        lane.take(_count(command["take"], "take", lane))
    elif "drop" in command:
        lane.drop(_count(command["drop"], "drop", lane))
    else:
        raise ValueError(f"unknown map command {sorted(command)} for lane {lane.name!r}")


def _count(value: Any, verb: str, lane: MapLane[Any, Any]) -> int:
    """How many entries a take or drop names: a whole number, zero or more (``int()``
    took 1.7 and true, and -1 emptied the map)."""
    if type(value) is not int or value < 0:
        raise ValueError(
            f"{verb} on map lane {lane.name!r} needs a whole number of entries, zero or more;"
            f" got {value!r}"
        )
    return value
