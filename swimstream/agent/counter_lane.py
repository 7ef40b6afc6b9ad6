"""Counter lanes: a PN-counter any linked writer can add to concurrently.

Our addition to the SwimOS lane kinds: a count shared by many writers (devices
reporting into a tower, instances counting into a global view) where every add must
count exactly once, even when writers add at the same time through their downlinks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from swimstream.agent.lane import F, Lane
from swimstream.crdt import (
    CounterAdd,
    CounterSnapshot,
    Op,
    PNCounter,
    Snapshot,
    encode_counter,
)
from swimstream.errors import CallbackError

if TYPE_CHECKING:
    from swimstream.agent.context import AgentContext


class CounterLane(Lane):
    """An integer count; ``on_change(self, new, old)`` runs after every change."""

    kind: ClassVar[str] = "counter"
    CALLBACKS: ClassVar[dict[str, tuple[int, bool]]] = {"on_change": (3, False)}

    __slots__ = ("_counter", "_on_change")

    def on_change(self, fn: F) -> F:
        """Decorate ``fn(self, new, old)`` to run after each change of the count."""
        return self._register_callback("on_change", fn)

    def _setup(self, context: AgentContext) -> None:
        self._counter = PNCounter(context.replica_id, context.hlc)
        self._on_change: Callable[..., Any] | None = self._spec.callbacks.get("on_change")

    def get(self) -> int:
        """The current count (within 64 bits: ``PNCounter.value``)."""
        return self._counter.value

    @property
    def value(self) -> int:
        """The current count (within 64 bits: ``PNCounter.value``)."""
        return self._counter.value

    def add(self, delta: int = 1) -> None:
        """Add ``delta`` (negative to subtract), stream it, then run ``on_change``.

        Raises TypeError unless ``delta`` is an integer within 64 bits, and unless the
        totals stay within them (``crdt.counter.MAX_TOTAL``): they are stored as such (a
        float total made the agent unloadable)."""
        # (Bounds of one digit first: CPython 3.11 specializes comparing two such ints,
        # and compares 2**63 with anything through the generic path, about 100 machine
        # instructions a comparison.)
        if type(delta) is not int or not (
            -0x3FFF_FFFF < delta < 0x3FFF_FFFF or -(2**63) < delta < 2**63
        ):
            raise self._unstorable(
                TypeError(f"the counter's delta must be an integer, not {delta!r}")
            )
        counter = self._counter
        if not (self._uplinks or self._observers or self._on_change is not None):
            try:  # nothing watches the count: no op to make (``PNCounter.add_unseen``)
                counter.add_unseen(delta)
            except OverflowError as exc:
                raise self._unstorable(TypeError(str(exc))) from None
            return
        if self._notes is not None and not self._uplinks and self._on_change is None:
            try:  # only the store watches: no op either, its note kept here (``ChangeNotes``)
                counter.add_unseen(delta)
            except OverflowError as exc:
                raise self._unstorable(TypeError(str(exc))) from None
            self._notes.dirty[self] = None
            return
        old = counter.value
        try:
            op = counter.add(delta)
        except OverflowError as exc:
            raise self._unstorable(TypeError(str(exc))) from None
        self._changed(op, old)

    def _changed(self, op: CounterAdd, old: int) -> None:
        self._emit(op)
        on_change = self._on_change
        if on_change is not None:
            try:
                on_change(self._agent, self._counter.value, old)
            except CallbackError:
                raise
            except Exception as exc:
                raise self._failed("on_change") from exc

    @property
    def stateful(self) -> bool:
        return True

    def snapshot(self) -> CounterSnapshot:
        return self._counter.snapshot()

    def encoded(self) -> bytes:
        return encode_counter(self._counter)

    def _restore(self, snapshot: Snapshot) -> None:
        assert isinstance(snapshot, CounterSnapshot)
        self._counter.merge(snapshot)

    def to_json(self) -> int:
        return self._counter.value

    def _command(self, value: Any) -> None:
        """A command adds its value: ``1``, ``-3`` or ``{"add": n}``."""
        delta = value.get("add") if isinstance(value, dict) else value
        if type(delta) is not int:
            raise ValueError(f"a command to counter lane {self.name!r} must be an integer")
        self.add(delta)

    def _apply_remote(self, op: Op) -> None:
        assert isinstance(op, CounterAdd)
        old = self._counter.value
        if self._counter.apply(op):
            self._changed(op, old)
