"""What every lane kind shares: declaration, binding, callbacks and change emission.

A lane object written in a class body (``status = ValueLane()``) is the *declaration*:
it knows its name and the callbacks decorated onto it. When the runtime creates an
agent, each declaration is *bound*: a fresh object of the same class, holding that
agent's state, is set as the agent's attribute of the lane's name, where it shadows
the declaration. So ``self.status`` is a plain attribute lookup on the hot path,
and it has the same type as the declaration, which keeps user code simply typed.

Callbacks are checked when the agent class is created (arity, and whether ``async`` is
allowed), so a wrong signature fails at import time with the class and lane named.
Callbacks that react to state changes must be plain functions: lane code never awaits,
so a change and its reactions happen in one uninterrupted step. Only callbacks that
start a unit of work (``on_command``, timers) may be ``async``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from swimstream.crdt import JsonValue, Op, Snapshot, encode, kind_problem
from swimstream.errors import CallbackError, DefinitionError
from swimstream.text import counted

if TYPE_CHECKING:
    from typing import Self

    from swimstream.agent.agent import Agent
    from swimstream.agent.context import AgentContext, ChangeNotes, LaneObserver, Uplink

F = TypeVar("F", bound=Callable[..., Any])


class LaneSpec:
    """What a class body declared for one lane, shared by every agent's bound copy.

    Kept apart from the lane objects so that a bound lane carries only per-agent state:
    across a million agents, every slot counts.
    """

    __slots__ = ("callbacks", "name", "options")

    def __init__(self, **options: Any) -> None:
        self.name = ""
        self.callbacks: dict[str, Callable[..., Any]] = {}
        self.options = options


class Lane:
    """Base of every lane kind."""

    kind: ClassVar[str] = ""
    """Wire name of the lane kind (``value``, ``map``, ``command``, ...)."""

    CALLBACKS: ClassVar[Mapping[str, tuple[int, bool]]] = {}
    """event -> (positional parameters including ``self``, may the callback be async)."""

    eager: ClassVar[bool] = True
    """Bound when the agent is created. Stateless lanes (commands) bind only when a
    link needs them, and otherwise cost nothing per agent."""

    __slots__ = ("_agent", "_notes", "_observers", "_spec", "_uplinks")

    _agent: Agent
    _uplinks: list[Uplink] | None
    _observers: tuple[LaneObserver, ...]
    _notes: ChangeNotes | None
    """The durable store's notes when the store is the lane's only observer (None
    otherwise): a write that nothing else follows then makes no op, and notes itself
    (see :class:`~swimstream.agent.context.ChangeNotes`)."""

    def __init__(self, **options: Any) -> None:
        self._spec = LaneSpec(**options)

    # -- declaration ---------------------------------------------------------------

    def __set_name__(self, owner: type, name: str) -> None:
        self._spec.name = name

    @property
    def name(self) -> str:
        """The lane's name: the attribute it was declared as."""
        return self._spec.name

    def _register_callback(self, event: str, fn: F) -> F:
        callbacks = self._spec.callbacks
        if event in callbacks:
            raise DefinitionError(
                f"lane {self._spec.name or '?'!r} already has an {event} callback "
                f"({callbacks[event].__name__}); a lane takes one per event (a subclass "
                "replaces its base's by defining a method of the same name)"
            )
        callbacks[event] = fn
        return fn

    def _as_seen_by(self, owner: type) -> Self:
        """This declaration, inherited by ``owner``, with ``owner``'s own callbacks.

        Callbacks are stored as functions, so without this a subclass defining a method
        of a callback's name would not replace it, and one decorating an inherited lane
        (``@Base.status.on_set``) would register on the declaration its bases and
        siblings share: their agents would run it too. Either way ``owner`` gets a
        declaration of its own (the same one when it changes nothing), and the shared
        ones get back what ``owner``'s body added to them. Class creation only.
        """
        name = self._spec.name
        callbacks = dict(self._spec.callbacks)
        own = vars(owner)
        prefix = f"{owner.__qualname__}."
        for klass in owner.__mro__[1:]:  # what owner's body decorated onto a base's lane
            declared = declared_lane(vars(klass).get(name))
            if declared is None:
                continue
            shared = declared._spec.callbacks
            for event, fn in list(shared.items()):
                fn_name = getattr(fn, "__name__", "")
                if own.get(fn_name) is fn and fn.__qualname__.startswith(prefix):
                    callbacks[event] = shared.pop(event)
        for event, fn in list(callbacks.items()):  # methods owner overrides by name
            fn_name = getattr(fn, "__name__", "")
            found = [vars(k)[fn_name] for k in owner.__mro__ if fn_name in vars(k)]
            if fn in found and found[0] is not fn:
                callbacks[event] = found[0]
        if callbacks == self._spec.callbacks:
            return self
        lane = object.__new__(type(self))
        lane._spec = LaneSpec(**self._spec.options)
        lane._spec.name = name
        lane._spec.callbacks = callbacks
        return lane

    def _validate(self, owner: type) -> None:
        """Check every callback's signature against what this lane kind calls it with."""
        for event, fn in self._spec.callbacks.items():
            arity, may_be_async = self.CALLBACKS[event]
            check_callback(owner, f"{self._spec.name}.{event}", fn, arity, may_be_async)

    def callback(self, event: str) -> Callable[..., Any] | None:
        """The function decorated as ``event`` on this lane's declaration, if any."""
        return self._spec.callbacks.get(event)

    # -- binding ---------------------------------------------------------------------

    def _bind(
        self,
        agent: Agent,
        uplinks: list[Uplink] | None,
        observers: tuple[LaneObserver, ...],
        notes: ChangeNotes | None = None,
    ) -> Self:
        """A copy of this declaration holding ``agent``'s state."""
        lane = object.__new__(type(self))
        lane._spec = self._spec
        lane._agent = agent
        lane._uplinks = uplinks
        lane._observers = observers  # (``_follow`` inline: a call less a lane made)
        lane._notes = None if notes is None or observers != (notes.lane_changed,) else notes
        lane._setup(agent._context)
        return lane

    def _setup(self, context: AgentContext) -> None:
        """Create this agent's state for the lane (overridden per kind)."""

    def _attach_uplinks(self, uplinks: list[Uplink] | None) -> None:
        """The runtime (re)points the lane at its list of links."""
        self._uplinks = uplinks

    def _attach_observers(
        self, observers: tuple[LaneObserver, ...], notes: ChangeNotes | None = None
    ) -> None:
        """The runtime (re)points the lane at its sinks and stores."""
        self._follow(observers, notes)

    def _follow(self, observers: tuple[LaneObserver, ...], notes: ChangeNotes | None) -> None:
        """``observers`` (sinks, and the store's ``notes.lane_changed``) see each op;
        when the store is the only one, a write that no link follows either keeps the
        store's notes itself, and makes no op (see ``_notes``)."""
        self._observers = observers
        alone = notes is not None and observers == (notes.lane_changed,)
        self._notes = notes if alone else None

    # -- change emission and callbacks -------------------------------------------------

    def _emit(self, op: Op) -> None:
        """Send one change to every link, then to observers (sinks, then the store)."""
        uplinks = self._uplinks
        if uplinks:
            for uplink in uplinks:
                uplink.offer(op)
        if self._observers:  # (an empty loop still makes an iterator: most lanes have none)
            for observer in self._observers:
                observer(self, op)

    def _failed(self, event: str) -> CallbackError:
        return CallbackError(self._agent.node_uri, self._spec.name, event)

    def _unstorable(self, problem: TypeError) -> TypeError:
        """The error for a value this lane cannot store (see ``kind_problem``)."""
        where = f"lane {self._spec.name!r} of {self._agent.node_uri}"
        return TypeError(f"{where} cannot hold this value: {problem}")

    def _refuse_kind(self, value: Any) -> None:
        """Raise for ``value`` if its kind is one the store cannot hold; the caller has
        taken the common kinds already, inline."""
        problem = kind_problem(value)
        if problem is not None:
            raise self._unstorable(problem)

    # -- state, overridden by lanes that hold some -------------------------------------

    @property
    def stateful(self) -> bool:
        """Whether the lane has state to store and sync (command lanes have none)."""
        return False

    def snapshot(self) -> Snapshot | None:
        """The lane's whole state, for syncing a link and for the store."""
        return None

    def encoded(self) -> bytes | None:
        """The lane's whole state in the store's binary form (None when it has none):
        ``encode(snapshot())``, which kinds checkpointed often do without the snapshot."""
        snapshot = self.snapshot()
        return None if snapshot is None else encode(snapshot)

    def _restore(self, snapshot: Snapshot) -> None:
        """Load a stored snapshot into a freshly bound lane (no callbacks fire)."""
        raise DefinitionError(f"lane {self.name!r} ({self.kind}) has no state to restore")

    def to_json(self) -> JsonValue:
        """The lane's state as a JSON value (what ``GET /node?lane=`` returns)."""
        return None

    def _command(self, value: Any) -> Any:
        """A command from outside (another agent, WARP, HTTP): a per-kind meaning."""
        raise DefinitionError(f"lane {self.name!r} ({self.kind}) does not take commands")

    def _command_unbound(self, agent: Agent, value: Any) -> Any:
        """A command to a lazy lane that ``agent`` has not bound (no link needs it)."""
        raise DefinitionError(f"lane {self.name!r} ({self.kind}) must be bound")

    def _unbound_handler(self) -> Callable[[Agent, Any], Any]:
        """What handles a command while the lane is unbound: one call per command, so
        the class computes it once (``Agent.__swim_unbound__``)."""
        return self._command_unbound

    def _apply_remote(self, op: Op) -> None:
        """An op written through a downlink's replica, arriving at the owner."""
        raise DefinitionError(f"lane {self.name!r} ({self.kind}) cannot be written through a link")

    def _sync(self, uplink: Uplink) -> None:
        """Send the lane's state to a link that just opened."""
        snapshot = self.snapshot()
        if snapshot is not None:
            uplink.offer_snapshot(snapshot)


def declared_lane(attribute: object) -> Lane | None:
    """The lane an agent class's namespace holds as ``attribute``, if it is one: as it
    was written in the class body, or as the class keeps it (:func:`keep_declared`)."""
    if type(attribute) is staticmethod:
        attribute = attribute.__func__
    return attribute if isinstance(attribute, Lane) else None


def keep_declared(lane: Lane) -> Any:
    """What an agent class keeps as the attribute of a lane's name: the declaration,
    wrapped in a ``staticmethod``, which hands it back as ever (``Device.status`` is
    the declaration) and which the agent's own attribute, its bound lane, shadows.

    Because CPython 3.11 never specializes reading an attribute whose class holds an
    object of a class defined in Python (such a class may gain a ``__get__`` at any
    time), where a ``staticmethod`` is of a built-in one: every ``self.status`` then
    took the generic look-up, some 170 machine instructions more a read (a towers
    reading makes about nine: 63,298 to 61,770; the peers' devices bench's reading
    three: 24,345 to 23,740)."""
    return staticmethod(cast("Callable[..., Any]", lane))  # (any object: ``Lane`` is not called)


def check_callback(owner: type, what: str, fn: Any, arity: int, may_be_async: bool) -> None:
    """Raise DefinitionError unless ``fn`` can be called with ``arity`` positional args."""
    if not callable(fn):
        raise DefinitionError(f"{owner.__name__}.{what}: {fn!r} is not callable")
    if inspect.iscoroutinefunction(fn) and not may_be_async:
        raise DefinitionError(
            f"{owner.__name__}.{what}: {fn.__name__} is async, but state-change callbacks "
            "must be plain functions (lane code never awaits); do async work in a command "
            "or timer callback"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without signatures: trust them
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is p.empty]
    has_varargs = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    required_kwonly = [
        p.name
        for p in signature.parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty
    ]
    if len(required) > arity or (len(positional) < arity and not has_varargs) or required_kwonly:
        expected = ", ".join(["self", *_PARAM_NAMES.get((what.split(".")[-1], arity), ())])
        raise DefinitionError(
            f"{owner.__name__}.{what}: {fn.__name__}{signature} must take ({expected}) "
            f"- {counted(arity, 'positional parameter')}"
        )


_PARAM_NAMES: dict[tuple[str, int], tuple[str, ...]] = {
    ("on_command", 2): ("value",),
    ("on_set", 3): ("new", "old"),
    ("on_change", 3): ("new", "old"),
    ("on_update", 4): ("key", "new", "old"),
    ("on_remove", 3): ("key", "old"),
    ("on_cue", 1): (),
    ("on_cue", 2): ("key",),
    ("on_sync", 1): (),
}
