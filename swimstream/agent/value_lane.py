"""Value lanes: one value, replicated as a last-writer-wins register."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from swimstream.agent.lane import F, Lane
from swimstream.crdt import (
    TAKEN_KINDS,
    LWWRegister,
    Op,
    RegisterSet,
    RegisterSnapshot,
    Snapshot,
    encode_register,
)
from swimstream.errors import CallbackError

if TYPE_CHECKING:
    from swimstream.agent.context import AgentContext

T = TypeVar("T")


class ValueLane(Lane, Generic[T]):
    """One value; ``on_set(self, new, old)`` runs after every change.

    ``set`` always fires ``on_set`` and streams the change, even when the value is equal
    to the old one (as SwimOS does): a set is an event. Changes that arrive from other
    replicas (writes through a downlink) fire it only when the value actually changed.
    """

    kind: ClassVar[str] = "value"
    CALLBACKS: ClassVar[dict[str, tuple[int, bool]]] = {"on_set": (3, False)}

    __slots__ = ("_on_set", "_register")

    def __init__(self, default: T | None = None) -> None:
        super().__init__(default=default)

    def on_set(self, fn: F) -> F:
        """Decorate ``fn(self, new, old)`` to run after each change."""
        return self._register_callback("on_set", fn)

    def _setup(self, context: AgentContext) -> None:
        spec = self._spec
        default = spec.options["default"]
        if isinstance(default, dict | list):  # each agent its own: one may change it in place
            default = copy.deepcopy(default)
        self._register = LWWRegister(context.replica_id, default, context.hlc)
        self._on_set: Callable[..., Any] | None = spec.callbacks.get("on_set")

    # -- reading and writing -----------------------------------------------------------

    def get(self) -> T:
        """The current value (the declared default until first set)."""
        return self._register._value  # type: ignore[no-any-return]

    @property
    def value(self) -> T:
        """The current value."""
        return self._register._value  # type: ignore[no-any-return]

    def set(self, value: T) -> None:
        """Replace the value, stream the change to every link, then run ``on_set``.

        Raises TypeError for a value of a kind the store cannot hold (``kind_problem``)."""
        kind = type(value)
        if kind not in TAKEN_KINDS and (
            kind is not int
            # (one digit's bounds first: see ``CounterLane.add``)
            or not (-0x3FFF_FFFF < value < 0x3FFF_FFFF or -(2**63) <= value < 2**64)  # type: ignore[operator]
        ):
            self._refuse_kind(value)
        register = self._register
        old = register._value
        # (Links, observers, then nothing: the usual cases tested as often as ever.)
        if self._uplinks:
            self._emit(register.set(value))
        elif self._observers:
            if self._notes is None:
                self._emit(register.set(value))
            else:  # only the store observes: no op either (``ChangeNotes``)
                register.set_unseen(value)
                self._notes.dirty[self] = None
        else:  # nothing to send the op to: none is made
            register.set_unseen(value)
        on_set = self._on_set
        if on_set is not None:
            try:
                on_set(self._agent, value, old)
            except CallbackError:
                raise
            except Exception as exc:
                raise self._failed("on_set") from exc

    # -- replication -------------------------------------------------------------------

    @property
    def stateful(self) -> bool:
        return True

    def snapshot(self) -> RegisterSnapshot:
        return self._register.snapshot()

    def encoded(self) -> bytes:
        return encode_register(self._register)

    def _restore(self, snapshot: Snapshot) -> None:
        assert isinstance(snapshot, RegisterSnapshot)
        self._register.merge(snapshot)

    def to_json(self) -> Any:
        return self._register._value

    def _command(self, value: Any) -> None:
        self.set(value)

    def _apply_remote(self, op: Op) -> None:
        assert isinstance(op, RegisterSet)
        old = self._register._value
        if not self._register.apply(op):
            return
        self._emit(op)
        on_set = self._on_set
        if on_set is not None:
            try:
                on_set(self._agent, op.value, old)
            except CallbackError:  # (another lane's, raised inside: reported as its own)
                raise
            except Exception as exc:
                raise self._failed("on_set") from exc
