"""Demand lanes: values computed only when a linked client asks for them.

Nothing is stored. ``cue()`` tells the runtime that something changed; if any link is
open, the runtime calls ``on_cue`` in a later turn of the agent (once, however many
cues arrived in between) and streams the result. A link that opens (syncs) gets a fresh
computation. With no links, a cue costs nothing: the lane exists for views that are
expensive and rarely watched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from swimstream.agent.lane import F, Lane
from swimstream.crdt import (
    ZERO_STAMP,
    MapKey,
    MapPut,
    MapRemove,
    MapSnapshot,
    RegisterSet,
    RegisterSnapshot,
)
from swimstream.errors import CallbackError

if TYPE_CHECKING:
    from swimstream.agent.context import AgentContext, Uplink

T = TypeVar("T")
K = TypeVar("K", bound=MapKey)
V = TypeVar("V")


class _DemandLane(Lane):
    __slots__ = ()

    @property
    def _context(self) -> AgentContext:
        return self._agent._context

    def _stamp(self) -> tuple[int, str]:
        context = self._agent._context
        return (context.hlc.now(), context.replica_id)

    def _compute(self, event: str, *args: Any) -> Any:
        fn = self._spec.callbacks.get(event)
        if fn is None:
            return None
        try:
            return fn(self._agent, *args)
        except CallbackError:
            raise
        except Exception as exc:
            raise self._failed(event) from exc

    @property
    def linked(self) -> bool:
        """Whether any link is open (a cue does work only then)."""
        return bool(self._uplinks)


class DemandValueLane(_DemandLane, Generic[T]):
    """``on_cue(self) -> value`` computes the lane's value for its links."""

    kind: ClassVar[str] = "demand_value"
    CALLBACKS: ClassVar[dict[str, tuple[int, bool]]] = {"on_cue": (1, False)}
    __slots__ = ()

    def on_cue(self, fn: F) -> F:
        """Decorate ``fn(self) -> value``: computes the value when cued or linked."""
        return self._register_callback("on_cue", fn)

    def cue(self) -> None:
        """Something changed: recompute for the links (if any) in a later turn."""
        if self._uplinks:
            self._context.cue(self, None)

    def _cued(self, keys: Iterable[Any]) -> None:
        if self._uplinks:
            self._emit(RegisterSet(self._stamp(), self._compute("on_cue")))

    def _sync(self, uplink: Uplink) -> None:
        uplink.offer_snapshot(RegisterSnapshot(self._stamp(), self._compute("on_cue")))

    def to_json(self) -> Any:
        return self._compute("on_cue")


class DemandMapLane(_DemandLane, Generic[K, V]):
    """``on_cue(self, key) -> value | None`` per key; ``on_sync(self) -> keys`` on link."""

    kind: ClassVar[str] = "demand_map"
    CALLBACKS: ClassVar[dict[str, tuple[int, bool]]] = {
        "on_cue": (2, False),
        "on_sync": (1, False),
    }
    __slots__ = ()

    def on_cue(self, fn: F) -> F:
        """Decorate ``fn(self, key) -> value | None`` (None removes the key downstream)."""
        return self._register_callback("on_cue", fn)

    def on_sync(self, fn: F) -> F:
        """Decorate ``fn(self) -> iterable of keys`` to send when a link opens."""
        return self._register_callback("on_sync", fn)

    def cue(self, key: K) -> None:
        """The value at ``key`` changed: recompute it for the links in a later turn."""
        if self._uplinks:
            self._context.cue(self, key)

    def remove(self, key: K) -> None:
        """Tell the links that ``key`` is gone."""
        if self._uplinks:
            self._emit(MapRemove(self._stamp(), key))

    def _cued(self, keys: Iterable[Any]) -> None:
        """Compute and stream each key cued since the last turn. A key whose ``on_cue``
        raises does not stop the others (the first error is raised at the end): the
        cues were taken all at once, and the keys left behind it were never streamed."""
        if not self._uplinks:
            return
        computed, failed = self._each(keys)
        for key, value in computed:
            stamp = self._stamp()
            self._emit(MapRemove(stamp, key) if value is None else MapPut(stamp, key, value))
        if failed is not None:
            raise failed

    def _each(self, keys: Iterable[Any]) -> tuple[list[tuple[Any, Any]], CallbackError | None]:
        """Each key with what its ``on_cue`` computed, and the first failure: a key
        whose ``on_cue`` raised is left out, not the others with it."""
        computed: list[tuple[Any, Any]] = []
        failed: CallbackError | None = None
        for key in keys:
            try:
                computed.append((key, self._compute("on_cue", key)))
            except CallbackError as exc:
                failed = failed or exc
        return computed, failed

    def _entries(self) -> tuple[list[tuple[Any, Any]], CallbackError | None]:
        """Every key ``on_sync`` names with its value (:meth:`_each`), and the first
        failure (an ``on_sync`` that raised names no key)."""
        try:
            keys: Iterable[Any] = self._compute("on_sync") or ()
        except CallbackError as exc:
            return [], exc
        computed, failed = self._each(keys)
        return [(key, value) for key, value in computed if value is not None], failed

    def _sync(self, uplink: Uplink) -> None:
        """The link is synced with what could be computed before a failure is raised:
        left unsynced, it showed nothing until some later cue of each key."""
        pairs, failed = self._entries()
        entries = tuple((key, self._stamp(), value) for key, value in pairs)
        uplink.offer_snapshot(MapSnapshot(entries, (), ZERO_STAMP, 0))
        if failed is not None:
            raise failed

    def to_json(self) -> Any:
        pairs, failed = self._entries()
        if failed is not None:
            raise failed
        return dict(pairs)
