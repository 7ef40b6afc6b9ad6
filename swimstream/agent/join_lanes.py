"""Join lanes: maps whose entries are live downlinks to other agents' lanes.

``JoinValueLane``: ``join(key, node, lane)`` links to a value lane; the entry at ``key``
follows that lane's value from the link's sync on (its default, if it was never set).
``JoinMapLane``: ``join(link_key, node, lane)`` links to a map lane; the join is the
union of the joined maps. A key two of them share shows the value delivered last; when
the map it came from removes it, or that map's link is removed, the key falls back to the
newest write among the other joined maps that hold it, and leaves the join (``on_remove``)
only when none does. ``remove(link_key)`` drops that link's entries but those.

This is how aggregates are built: a tower joins its devices, a region joins its
towers, and each level's callbacks recompute summaries as the level below changes. The
graph follows the data: joining a key to a new node replaces the old link (in a join
map, the old link's entries go as ``remove`` drops them; in a join value lane, the entry
shows the old value until the new link's sync replaces it). A join that fails (no such
node or lane, a lane of the other kind, an agent that cannot load) raises and leaves the
key's old link as it was.

The joined links are ordinary downlinks of the agent tagged with ``(lane, key)``, so
they are stored, restored and re-synced like any other link.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from swimstream.agent.downlink import Downlink, MapDownlink, ValueDownlink
from swimstream.agent.lane import F, Lane
from swimstream.crdt import (
    ZERO_STAMP,
    LWWMap,
    MapKey,
    MapSnapshot,
    Snapshot,
    Stamp,
    bad_key,
    raise_bad_key,
    reads_otherwise,
)
from swimstream.errors import CallbackError

if TYPE_CHECKING:
    from swimstream.agent.context import AgentContext

K = TypeVar("K", bound=MapKey)
V = TypeVar("V")


class _JoinLane(Lane, Generic[K, V]):
    CALLBACKS: ClassVar[dict[str, tuple[int, bool]]] = {
        "on_update": (4, False),
        "on_remove": (3, False),
    }

    __slots__ = ("_links", "_map", "_on_remove", "_on_update")

    def on_update(self, fn: F) -> F:
        """Decorate ``fn(self, key, new, old)``: runs when a joined entry changes."""
        return self._register_callback("on_update", fn)

    def on_remove(self, fn: F) -> F:
        """Decorate ``fn(self, key, old)``: runs when an entry leaves the join."""
        return self._register_callback("on_remove", fn)

    def _setup(self, context: AgentContext) -> None:
        self._map = LWWMap(context.replica_id, context.hlc)
        self._links: dict[Any, int] = {}  # join key -> downlink id
        self._on_update: Callable[..., Any] | None = self._spec.callbacks.get("on_update")
        self._on_remove: Callable[..., Any] | None = self._spec.callbacks.get("on_remove")

    # -- reading -----------------------------------------------------------------------

    # (Reads go to the map's entries directly: aggregates read their join on every
    # change, and the map's own accessors were one more call each time.)

    def get(self, key: K, default: V | None = None) -> V | None:
        """The joined value at ``key``."""
        entry = self._map._entries.get(key)
        return default if entry is None else entry[1]

    def __getitem__(self, key: K) -> V:
        entry = self._map._entries.get(key)
        if entry is None:
            raise KeyError(key)
        return entry[1]  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        return key in self._map._entries

    def __len__(self) -> int:
        return len(self._map._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self._map)  # type: ignore[arg-type]

    def keys(self) -> list[K]:
        """The keys present."""
        return self._map.keys()  # type: ignore[return-value]

    def values(self) -> list[V]:
        """The values present."""
        return self._map.values()

    def items(self) -> list[tuple[K, V]]:
        """The ``(key, value)`` pairs present."""
        return self._map.items()  # type: ignore[return-value]

    def joined(self) -> dict[Any, tuple[str, str]]:
        """Join key -> (node URI, lane) of each open link."""
        links = self._agent.downlinks
        return {key: (links[i].node_uri, links[i].lane) for key, i in self._links.items()}

    # -- joining -----------------------------------------------------------------------

    def _join(self, key: Any, node_uri: str, lane: str, map_like: bool) -> None:
        if bad_key(key):
            raise_bad_key(key)  # the key is stored with the link, and keys the entry
        link_id = self._links.get(key)
        if link_id is not None:
            current = self._agent.downlinks.get(link_id)
            if current is not None and (current.node_uri, current.lane) == (node_uri, lane):
                return
        # The new link opens before the old one closes: a target that cannot be linked
        # (no route, no such lane, a lane of the other kind, an agent whose stored state
        # no longer loads) raises here, and the key keeps its old link and entries.
        downlink = self._agent._open_link(node_uri, lane, {}, (self.name, key), map_like)
        try:
            if link_id is not None:
                self._unjoin(key)
        finally:  # (an ``on_remove`` that raised there leaves the new link the key's)
            self._links[key] = downlink.id

    def _unjoin(self, key: Any) -> Downlink | None:
        link_id = self._links.pop(key, None)
        downlink = None if link_id is None else self._agent.downlinks.get(link_id)
        if downlink is not None:
            downlink.close()
        return downlink

    def _adopt(self, key: Any, downlink: Downlink) -> None:
        """A restored downlink of this join (after passivation or restart)."""
        self._links[key] = downlink.id

    # -- changes -----------------------------------------------------------------------

    def _put(self, key: Any, value: Any) -> None:
        current = self._map._entries.get(key)
        old = None if current is None else current[1]
        # (Links, observers, then nothing: the usual cases tested as often as ever.)
        if self._uplinks:
            self._emit(self._map.put(key, value))
        elif self._observers:
            if self._notes is None:
                self._emit(self._map.put(key, value))
            else:  # only the store observes: no op either (``ChangeNotes``)
                # (``MapLane.put`` holds a copy of this: one method of ``Lane`` for both cost
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
        on_update = self._on_update  # (a local: ``self._on_update(...)`` is a method
        if on_update is not None:  # look-up CPython 3.11 never specializes for a slot)
            try:
                on_update(self._agent, key, value, old)
            except CallbackError:
                raise
            except Exception as exc:
                raise self._failed("on_update") from exc

    def _drop(self, key: Any) -> None:
        if key not in self._map:
            return
        old = self._map.get(key)
        self._emit(self._map.remove(key))
        if self._on_remove is not None:
            try:
                self._on_remove(self._agent, key, old)
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


class JoinValueLane(_JoinLane[K, V]):
    """key -> the live value of another agent's value lane."""

    kind: ClassVar[str] = "join_value"
    __slots__ = ()

    def join(self, key: K, node: str, lane: str) -> None:
        """Make the entry at ``key`` follow ``lane`` of ``node`` (replacing any old link)."""
        self._join(key, node, lane, map_like=False)

    def remove(self, key: K) -> None:
        """Close the link at ``key`` and drop its entry."""
        self._unjoin(key)
        self._drop(key)

    _joined_value = _JoinLane._put  # a linked value's change is a put (no call between)

    def _adopt(self, key: Any, downlink: Downlink) -> None:
        super()._adopt(key, downlink)
        if isinstance(downlink, ValueDownlink):
            downlink._seed(self._map.get(key))


class JoinMapLane(_JoinLane[K, V]):
    """The union of several agents' map lanes, each joined under a link key."""

    kind: ClassVar[str] = "join_map"
    __slots__ = ("_origin",)

    def _setup(self, context: AgentContext) -> None:
        super()._setup(context)
        self._origin: dict[Any, Any] = {}  # entry key -> link key it came from

    def join(self, link_key: Any, node: str, lane: str) -> None:
        """Merge the entries of ``lane`` of ``node`` into this map, under ``link_key``
        (replacing any old link under it, whose entries go as ``remove`` drops them)."""
        self._join(link_key, node, lane, map_like=True)

    def remove(self, link_key: Any) -> None:
        """Close the link ``link_key`` and drop the entries it brought, but for keys
        another joined map still holds: those take that map's value."""
        self._unjoin(link_key)

    def _unjoin(self, key: Any) -> Downlink | None:
        """Closing a link, by ``remove`` or by joining its key to another map, lets go
        of the entries it brought: none of them would ever change or leave again."""
        downlink = super()._unjoin(key)
        failed: CallbackError | None = None  # (an ``on_remove`` that raises stops no other)
        for entry in [k for k, origin in self._origin.items() if origin == key]:
            try:
                self._fall_back(entry)
            except CallbackError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed
        return downlink

    def _adopt(self, key: Any, downlink: Downlink) -> None:
        """An entry came from the link whose value the join shows, not from whichever
        link holding the key is restored last: ``remove`` of the link it came from must
        drop it, and of another must not. Of links that hold the same value, the one
        with the newest write of it is taken for the last delivered."""
        super()._adopt(key, downlink)
        if not isinstance(downlink, MapDownlink):
            return
        replica = downlink._replica
        links = self._agent.downlinks
        for entry, value in replica.items():
            if entry not in self._map or self._map.get(entry) != value:
                continue  # another link's value won this key
            origin = self._origin.get(entry)
            current = None if origin is None else links.get(self._links.get(origin, -1))
            if (
                current is None
                or not isinstance(current, MapDownlink)
                or (current._replica.stamp_of(entry) or ZERO_STAMP)
                < (replica.stamp_of(entry) or ZERO_STAMP)
            ):
                self._origin[entry] = key

    def _joined_update(self, link_key: Any, key: Any, value: Any) -> None:
        self._origin[key] = link_key
        self._put(key, value)

    def _joined_remove(self, link_key: Any, key: Any) -> None:
        if self._origin.get(key) == link_key:
            self._fall_back(key)

    def _fall_back(self, key: Any) -> None:
        """The link whose value the join shows at ``key`` no longer holds it (removed
        there, or the link left; either way no longer among the holders): the join is
        the union of its maps, so the key takes the newest write of those that still
        hold it, and leaves only when none does."""
        holder: tuple[Stamp, Any, LWWMap] | None = None  # (stamp, link key, replica)
        links = self._agent.downlinks
        for link_key, link_id in self._links.items():
            downlink = links.get(link_id)
            if not isinstance(downlink, MapDownlink):
                continue
            stamp = downlink._replica.stamp_of(key)
            if stamp is not None and (holder is None or stamp > holder[0]):
                holder = (stamp, link_key, downlink._replica)
        if holder is None:
            self._origin.pop(key, None)
            self._drop(key)
            return
        _, link_key, replica = holder
        self._origin[key] = link_key
        value = replica.get(key)
        if key not in self._map or reads_otherwise(value, self._map.get(key)):
            self._put(key, value)
