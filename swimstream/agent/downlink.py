"""Downlinks: an agent's live replica of another agent's lane.

A downlink holds a CRDT replica of the target lane. The runtime delivers the target's
changes to it in the subscriber's own turn, already coalesced (a slow subscriber sees
the latest value, or the latest entry per key, never a backlog), and the downlink fires
the subscriber's callbacks for what actually changed.

Writing through a downlink (``set``, ``put``, ``add``) applies to the local replica at
once, fires the local callbacks, and sends the op to the owner; the owner's state then
flows back to every replica, and the CRDT makes them all agree.

Callbacks must be methods of the agent: the downlink stores their *names*, so the link
survives passivation and restarts (a lambda could not be stored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from swimstream.crdt import (
    ZERO_STAMP,
    CounterAdd,
    CounterSnapshot,
    LWWMap,
    LWWRegister,
    MapClear,
    MapKey,
    MapPut,
    MapRemove,
    MapSnapshot,
    Op,
    PNCounter,
    RegisterSet,
    RegisterSnapshot,
    Snapshot,
    kind_problem,
)
from swimstream.errors import CallbackError, ClosedResourceError, DefinitionError

if TYPE_CHECKING:
    from swimstream.agent.agent import Agent
    from swimstream.agent.context import AgentContext

VALUE_KINDS = frozenset({"value", "counter", "demand_value", "command"})
MAP_KINDS = frozenset({"map", "join_value", "join_map", "demand_map"})
WRITABLE_KINDS = frozenset({"value", "counter", "map"})
COMMAND_KINDS = WRITABLE_KINDS | {"command"}
"""Lane kinds that take commands (the others are fed by links or computed)."""


def callback_name(agent: Agent, fn: Callable[..., Any] | None, what: str) -> str | None:
    """The method name of ``fn``, which must be a method of ``agent`` (or None)."""
    if fn is None:
        return None
    if getattr(fn, "__self__", None) is not agent or not hasattr(type(agent), fn.__name__):
        raise DefinitionError(
            f"{what} must be a method of the agent (e.g. self.on_status), got {fn!r}: "
            "links survive passivation and restarts, so their callbacks are stored by name"
        )
    return fn.__name__


class Downlink:
    """Base of value and map downlinks."""

    __slots__ = (
        "_agent",
        "_callbacks",
        "_closed",
        "_join",
        "_joined",
        "_stale",
        "_synced",
        "id",
        "lane",
        "lane_kind",
        "node_uri",
        "stores_replica",
    )

    def __init__(
        self,
        agent: Agent,
        link_id: int,
        node_uri: str,
        lane: str,
        lane_kind: str,
        callbacks: dict[str, str],
        join: tuple[str, MapKey] | None = None,
    ) -> None:
        self._agent = agent
        self.id = link_id
        self.node_uri = node_uri
        self.lane = lane
        self.lane_kind = lane_kind
        self._callbacks = callbacks
        self._join = join
        self._joined: Any = None  # the join lane, bound (looked up at the first change)
        self._closed = False
        self._stale = False
        self._synced: bool | None = False  # None: synced, and a resync is coming
        # Whether the stored link keeps the replica. A join-value link to a value lane
        # need not: its join lane's entry is the replica's value, and restores it. A
        # counter's must: its count sums every writer's totals, and the next delivery
        # (one writer's new totals) is merged into them. (An attribute: every delivery
        # asks.)
        self.stores_replica = (
            join is None or lane_kind == "counter" or isinstance(self, MapDownlink)
        )

    @property
    def stale(self) -> bool:
        """True while the owner is unreachable: the replica may be behind."""
        return self._stale

    @property
    def synced(self) -> bool:
        """True once the owner's state has arrived."""
        return self._synced is not False

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def join(self) -> tuple[str, MapKey] | None:
        """``(join lane, key)`` when a join lane owns this downlink."""
        return self._join

    @property
    def callbacks(self) -> dict[str, str]:
        """Event -> name of the agent method it calls."""
        return self._callbacks

    def close(self) -> None:
        """Unlink. Idempotent."""
        if not self._closed:
            self._closed = True
            self._context().close_downlink(self)

    def _context(self) -> AgentContext:
        return self._agent._context

    def _check_writable(self, value: Any = None) -> None:
        """Refuse a write through a closed or read-only link, or of a value the owner
        could not store (see ``kind_problem``)."""
        if self._closed:
            raise ClosedResourceError(f"downlink to {self.node_uri}#{self.lane} is closed")
        if self._join is not None or self.lane_kind not in WRITABLE_KINDS:
            raise DefinitionError(
                f"cannot write through a link to {self.node_uri}#{self.lane} ({self.lane_kind})"
            )
        problem = kind_problem(value)
        if problem is not None:
            where = f"{self.node_uri}#{self.lane}"
            raise TypeError(f"a write through the link to {where} cannot hold it: {problem}")

    def _call(self, event: str, *args: Any) -> None:
        name = self._callbacks.get(event)
        if name is None:
            return
        try:
            getattr(self._agent, name)(*args)
        except CallbackError:
            raise
        except Exception as exc:
            raise CallbackError(self._agent.node_uri, f"{self.node_uri}#{self.lane}", name) from exc

    def _mark_stale(self, stale: bool) -> None:
        """The runtime says whether the owner is reachable."""
        if stale != self._stale:
            self._stale = stale
            self._call("on_stale", stale)

    def snapshot(self) -> Snapshot:
        """The replica's whole state (stored when the agent is passivated)."""
        raise NotImplementedError

    def _restore(self, snapshot: Snapshot) -> None:
        raise NotImplementedError

    def _receive(self, snapshot: Snapshot | None, ops: Sequence[Op]) -> None:
        """Apply a coalesced delivery from the owner and fire callbacks."""
        raise NotImplementedError

    def _receive_op(self, op: Op) -> None:
        """Apply one change from the owner, made as this subscriber could take it (most
        deliveries), and fire callbacks: ``_receive`` of it alone."""
        self._receive(None, (op,))

    def _replace_before(self, before: int) -> None:
        """The delivery that comes next holds a sync of the owner's whole state, taken
        after its state was restored from elsewhere (its shard moved here) or this link
        was: what the replica holds from before HLC time ``before`` gives way to it,
        since a merge would keep writes the restored owner never had (newer-stamped
        values, entries whose removal left no tombstone, other writers' higher totals
        at a counter). A counter's own writer keeps its totals, and sends them again if
        the owner lost some: they never go back, or its next adds would count for
        nothing."""


class ValueDownlink(Downlink):
    """Replica of a value (or counter) lane; ``on_set(new, old)`` on each change."""

    __slots__ = ("_replica",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        context = self._agent._context
        if self.lane_kind == "counter":
            writer = f"{context.replica_id}:{self._agent.node_uri}:{self.id}"
            self._replica: LWWRegister | PNCounter = PNCounter(writer, context.hlc)
        else:
            self._replica = LWWRegister(context.replica_id, None, context.hlc)

    def get(self) -> Any:
        """The replica's current value."""
        return self._replica.get()

    def set(self, value: Any) -> None:
        """Write through to a value lane: here at once, then at the owner."""
        self._check_writable(value)
        if not isinstance(self._replica, LWWRegister):
            raise DefinitionError(f"{self.node_uri}#{self.lane} is a counter: use add()")
        old = self._replica.get()
        op = self._replica.set(value)
        self._context().write_through(self, op)
        self._call("on_set", value, old)

    def add(self, delta: int = 1) -> None:
        """Add to a counter lane through the link."""
        self._check_writable()
        if type(delta) is not int or not -(2**63) < delta < 2**63:
            raise TypeError(f"the counter's delta must be an integer, not {delta!r}")
        if not isinstance(self._replica, PNCounter):
            raise DefinitionError(f"{self.node_uri}#{self.lane} is not a counter: use set()")
        old = self._replica.value
        try:
            op = self._replica.add(delta)
        except OverflowError as exc:
            raise TypeError(f"{self.node_uri}#{self.lane}: {exc}") from None
        self._context().write_through(self, op)
        self._call("on_set", self._replica.value, old)

    def snapshot(self) -> Snapshot:
        return self._replica.snapshot()

    def _restore(self, snapshot: Snapshot) -> None:
        assert isinstance(snapshot, RegisterSnapshot | CounterSnapshot)
        if type(snapshot) is RegisterSnapshot and snapshot.stamp == ZERO_STAMP:
            # The target's default, synced under no stamp (``_took_default``): a merge
            # drops it as older than nothing, and the link, still open, syncs no more.
            self._seed(snapshot.value)
            return
        self._replica.merge(snapshot)  # type: ignore[arg-type]

    def _replace_before(self, before: int) -> None:
        # (A link never synced stays so: its first delivery is a first sync, whose
        # join entry appears even unchanged, and its replica holds no other writer's.)
        replica = self._replica
        if isinstance(replica, PNCounter):
            # The sync, every writer's totals at the owner, replaces the other writers'
            # (``PNCounter.replace``, in ``_receive``).
            self._synced = self._synced and None
        elif replica._stamp[0] < before:
            replica._stamp = ZERO_STAMP  # the sync's value wins, even an unset default:
            self._synced = self._synced and None  # taken as at a first sync (``_took_default``)

    def _resync_counter(self, replica: PNCounter, ops: Sequence[Op]) -> bool:
        """Take a resync's totals (``PNCounter.replace``); True when the count changed."""
        totals = [op for op in ops if type(op) is CounterAdd]
        changed = replica.replace(totals)
        if replica._value != sum(op.positive - op.negative for op in totals):
            # The owner lost adds of this writer (restored from older state): they count
            # again, as they did here.
            self._context().write_through(self, replica.add(0))
        return changed

    def _seed(self, value: Any) -> None:
        """A restored join-value link takes its value from its join lane's entry, under
        no stamp: whatever the owner writes next wins, and is a change only if it differs
        from what the join shows (a set to None after a restore was lost)."""
        if isinstance(self._replica, LWWRegister) and self._replica.stamp == ZERO_STAMP:
            self._replica._value = value

    def _receive_op(self, op: Op) -> None:
        # (``_receive``'s usual case, a synced link's one change, without the tuples,
        # the loop and the branches of a coalesced delivery or a sync: once per change)
        if self._synced is not True:
            self._receive(None, (op,))
            return
        replica = self._replica
        join = self._join
        if join is not None:  # (the old value is the join lane's to look up)
            if replica.apply(op):  # type: ignore[arg-type]
                joined = self._joined
                if joined is None:
                    joined = self._joined = self._agent._namespace[join[0]]
                joined._joined_value(join[1], replica._value)
            return
        old = replica._value
        if replica.apply(op):  # type: ignore[arg-type]
            self._call("on_set", replica._value, old)

    def _receive(self, snapshot: Snapshot | None, ops: Sequence[Op]) -> None:
        replica = self._replica
        old = replica._value  # (both replica kinds keep it there: no call per delivery)
        changed = False
        synced = self._synced
        if snapshot is not None:
            changed = replica.merge(snapshot)  # type: ignore[arg-type]
        if synced is None and type(replica) is PNCounter:  # (a resync)
            changed = self._resync_counter(replica, ops)
        else:
            for op in ops:
                changed = replica.apply(op) or changed  # type: ignore[arg-type]
        first = not synced
        self._synced = True
        if first and not changed:  # (the sync: not on the path of every later delivery)
            changed = _took_default(replica, ops)
        join = self._join
        if join is not None:
            # The first delivery is the target's state: the entry appears (or replaces
            # that of the key's previous target) even when the replica did not change.
            # (Not a resync's, which finds the entry in place: no call if unchanged.)
            if changed or synced is False:
                self._agent._namespace[join[0]]._joined_value(join[1], replica._value)
        elif changed:
            self._call("on_set", replica._value, old)


def _took_default(replica: LWWRegister | PNCounter, ops: Sequence[Op]) -> bool:
    """A lane never set holds its default, which carries no stamp to win with: the sync
    that brings it sets the replica anyway. True when that changed the replica."""
    for op in ops:
        if (
            type(op) is RegisterSet
            and op.stamp == ZERO_STAMP == replica._stamp  # type: ignore[union-attr]
            and op.value != replica._value
        ):
            replica._value = op.value
            return True
    return False


class MapDownlink(Downlink):
    """Replica of a map lane; ``on_update(key, new, old)`` and ``on_remove(key, old)``."""

    __slots__ = ("_opened_at", "_replica")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        context = self._agent._context
        self._replica = LWWMap(context.replica_id, context.hlc)
        # What the replica holds from before this link opened (a restored replica)
        # gives way to its sync, the owner's whole state: see ``_receive``. None once
        # synced (a resync sets it again: ``_replace_before``).
        self._opened_at: int | None = context.hlc.now()

    def get(self, key: MapKey, default: Any = None) -> Any:
        """The replica's value at ``key``."""
        return self._replica.get(key, default)

    def to_dict(self) -> dict[MapKey, Any]:
        """The replica as a dict."""
        return self._replica.to_dict()

    def __getitem__(self, key: MapKey) -> Any:
        if key not in self._replica:
            raise KeyError(key)
        return self._replica.get(key)

    def __len__(self) -> int:
        return len(self._replica)

    def __contains__(self, key: object) -> bool:
        return key in self._replica

    def __iter__(self) -> Iterator[MapKey]:
        return iter(self._replica)

    def keys(self) -> list[MapKey]:
        """The keys, oldest write first (as the map lane orders them)."""
        return self._replica.keys()

    def values(self) -> list[Any]:
        """The values, oldest write first."""
        return self._replica.values()

    def items(self) -> list[tuple[MapKey, Any]]:
        """The ``(key, value)`` pairs, oldest write first."""
        return self._replica.items()

    def put(self, key: MapKey, value: Any) -> None:
        """Write through to a map lane."""
        self._check_writable(value)
        old = self._replica.get(key)
        self._context().write_through(self, self._replica.put(key, value))
        self._call("on_update", key, value, old)

    __setitem__ = put

    def remove(self, key: MapKey) -> None:
        """Remove through the link. Before the link's sync, whose replica holds nothing
        yet, the remove goes to the owner whether or not it holds the key."""
        self._check_writable()
        present = key in self._replica
        if not present and self._synced is not False:
            return
        old = self._replica.get(key)
        self._context().write_through(self, self._replica.remove(key))
        if present:
            self._call("on_remove", key, old)

    def __delitem__(self, key: MapKey) -> None:
        self._check_writable()  # (a closed link says so, whatever the key)
        if key not in self._replica and self._synced is not False:
            raise KeyError(key)
        self.remove(key)

    def snapshot(self) -> Snapshot:
        return self._replica.snapshot()

    def _restore(self, snapshot: Snapshot) -> None:
        assert isinstance(snapshot, MapSnapshot)
        self._replica.merge(snapshot)

    def _replace_before(self, before: int) -> None:
        if self._opened_at is None or before > self._opened_at:
            self._opened_at = before  # the sync replaces what the replica held from before

    def _receive(self, snapshot: Snapshot | None, ops: Sequence[Op]) -> None:
        """Apply a delivery to the replica, then call back for each visible change.

        Every change reaches the replica before any callback runs, and a callback that
        raises does not stop the others (the first error is raised at the end): a
        delivery is taken off its link once, so a change left unapplied behind a failed
        callback was lost for good. One that closes the link does: a join map lane took
        the entries after it from a link it had just removed, and kept them."""
        replica = self._replica
        self._synced = True
        events: list[tuple[bool, MapKey, Any, Any]] = []  # (put?, key, new, old)
        if snapshot is not None:
            assert isinstance(snapshot, MapSnapshot)
            before = replica.to_dict()
            # The link's first snapshot (or a resync's) is the owner's whole state, and
            # what the replica holds from before the link opened (or was marked) gives
            # way to it: keys the owner removed while a restored replica was away, whose
            # tombstones are gone, and writes an owner restored from older state never
            # had, newer-stamped than its own. What was written through since stays
            # (the owner has not seen it yet).
            opened_at, self._opened_at = self._opened_at, None
            if opened_at is None:
                changed = replica.merge(snapshot)
            else:
                changed = replica.replace_before(snapshot, opened_at)
            if changed:
                _diff(before, replica.to_dict(), events)
        for op in ops:
            if isinstance(op, MapPut):
                old = replica.get(op.key)
                if replica.apply(op):
                    events.append((True, op.key, op.value, old))
            elif isinstance(op, MapRemove):
                old = replica.get(op.key)
                if replica.apply(op):
                    events.append((False, op.key, None, old))
            elif isinstance(op, MapClear):
                before = replica.to_dict()
                if replica.apply(op):
                    _diff(before, replica.to_dict(), events)
        failed: Exception | None = None
        for put, key, new, old in events:
            if self._closed:  # by a callback of this delivery: the link calls back no more
                break
            try:
                if put:
                    self._updated(key, new, old)
                else:
                    self._removed(key, old)
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    def _updated(self, key: MapKey, new: Any, old: Any) -> None:
        if self._join is not None:
            lane, link_key = self._join
            self._agent._namespace[lane]._joined_update(link_key, key, new)
        else:
            self._call("on_update", key, new, old)

    def _removed(self, key: MapKey, old: Any) -> None:
        if self._join is not None:
            lane, link_key = self._join
            self._agent._namespace[lane]._joined_remove(link_key, key)
        else:
            self._call("on_remove", key, old)


def _diff(
    before: dict[MapKey, Any], after: dict[MapKey, Any], events: list[tuple[bool, MapKey, Any, Any]]
) -> None:
    """The changes from ``before`` to ``after``, as ``(put?, key, new, old)`` events."""
    for key, value in after.items():
        if key not in before or before[key] != value:
            events.append((True, key, value, before.get(key)))
    for key in before.keys() - after.keys():
        events.append((False, key, None, before[key]))
