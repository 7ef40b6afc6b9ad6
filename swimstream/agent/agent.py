"""The base class users write their agents with.

An agent is a plain class of lanes (class attributes) and callbacks (methods bound to
lanes by decorators). The runtime creates one instance per node URI on first use and
binds every lane to it; everything the agent does beyond its own lanes (commanding
other agents, linking to their lanes, timers, publishing insights) goes through its
:class:`~swimstream.agent.context.AgentContext`.

Lifecycle: ``on_start`` runs each time the agent is activated (first use, and again
after passivation or a restart), ``on_stop`` each time it is deactivated. Timers and
links persist across those, so ``on_start`` must not assume a blank slate: ``every``
is idempotent per method for that reason, and ``pending_timers`` reaches the timers an
earlier agent object set.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from swimstream.agent.downlink import (
    MAP_KINDS,
    VALUE_KINDS,
    Downlink,
    MapDownlink,
    ValueDownlink,
    callback_name,
)
from swimstream.agent.lane import Lane, check_callback, declared_lane, keep_declared
from swimstream.errors import DefinitionError

if TYPE_CHECKING:
    from swimstream.agent.context import AgentContext, Timer


_DOWNLINK_ARITY = {"on_set": 3, "on_update": 4, "on_remove": 3, "on_stale": 2}
"""A downlink's callback -> its positional parameters, ``self`` included."""

_CHECKED_DOWNLINK_CALLBACKS: set[tuple[type, str, str]] = set()
"""(agent class, method name, event) of the downlink callbacks found fit to call."""

_LANE_WRITES = {"value": "set(...)", "map": "put(key, value)", "counter": "add(...)"}
"""Lane kind -> the call that changes it, named when an agent assigns to a lane."""


class Agent:
    """A stateful twin of one entity, addressed by its node URI.

    Subclass it, declare lanes as class attributes and decorate callbacks onto them.
    Do not give ``__init__`` parameters: the runtime creates agents; put start-up work
    in :meth:`on_start`.
    """

    __swim_lanes__: ClassVar[Mapping[str, Lane]] = MappingProxyType({})
    """Every lane declared on the class and its bases, by name."""
    __swim_unbound__: ClassVar[Mapping[str, Callable[[Agent, Any], Any]]] = MappingProxyType({})
    """Lane name -> what handles a command to it while it is unbound (lazy lanes)."""
    __swim_base__: ClassVar[bool] = True
    """Declared in the body of a class to subclass, not to route to (this one): the
    configuration check and the plane refuse a route to it
    (:func:`swimstream.routing.is_base_class`). Subclasses do not inherit the mark, as
    it is read from the class's own namespace."""

    __slots__ = (
        "__dict__",
        "_context",
        "_downlinks",
        "_namespace",
        "_next_link_id",
        "node_uri",
        "params",
    )

    node_uri: str
    _context: AgentContext
    _downlinks: dict[int, Downlink] | None
    _next_link_id: int
    _namespace: dict[str, Any]
    """The bound lanes by name, for the runtime's look-ups (every command and link
    delivery). Each is also an attribute of the agent, set with ``object.__setattr__``:
    the agent's ``__dict__`` is never read, because CPython 3.11 keeps an object's
    attributes inline until it is, and only then specializes ``self.status`` (about 30
    machine instructions a read, against 300 once ``__dict__`` exists; a towers reading
    makes a dozen such reads). (It does so only as the class keeps the declaration:
    see ``keep_declared``.)"""
    params: Mapping[str, str]
    """The route's parameters: ``/device/:id`` at ``/device/42`` gives ``{"id": "42"}``.
    (A slot, set as the agent is attached: a ``cached_property`` writes ``__dict__``.)"""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        lanes: dict[str, Lane] = {}
        for klass in reversed(cls.__mro__):
            for name, attribute in vars(klass).items():
                declared = declared_lane(attribute)
                if declared is not None:
                    lanes[name] = declared
        for name, lane in lanes.items():
            if name not in vars(cls):  # inherited: overridden callbacks replace the base's
                seen = lane._as_seen_by(cls)
                if seen is not lane:
                    setattr(cls, name, keep_declared(seen))
                    lanes[name] = seen
            elif vars(cls)[name] is lane:  # (as written in this class's body)
                setattr(cls, name, keep_declared(lane))
        for name, lane in lanes.items():
            if name.startswith("_"):
                raise DefinitionError(f"{cls.__name__}.{name}: lane names must not start with _")
            lane._validate(cls)
        check_callback(cls, "on_start", cls.on_start, 1, may_be_async=True)
        if inspect.iscoroutinefunction(cls.on_stop):
            # Passivation and shutdown call it and go on: its coroutine was closed
            # unrun, and the failure reported at every passivation rather than here.
            raise DefinitionError(
                f"{cls.__name__}.on_stop: {cls.on_stop.__name__} is async, but on_stop must "
                "be a plain function: the agent is unloaded as it returns"
            )
        check_callback(cls, "on_stop", cls.on_stop, 1, may_be_async=False)
        init = cls.__init__
        if init is not Agent.__init__:
            check_callback(cls, "__init__", init, 1, may_be_async=False)
        cls.__swim_lanes__ = MappingProxyType(lanes)
        cls.__swim_unbound__ = {name: lane._unbound_handler() for name, lane in lanes.items()}

    def __init__(self) -> None:
        # Past ``__setattr__``'s lane check, here and in ``_attach``: run for every
        # activation, where four checked assignments cost a few percent.
        object.__setattr__(self, "_downlinks", None)
        object.__setattr__(self, "_next_link_id", 1)

    def __setattr__(self, name: str, value: Any) -> None:
        """Refuse ``self.status = x`` where ``status`` is a lane.

        The assignment would silently replace the bound lane with the value: its state
        would stop changing, links would stop hearing of it, and the agent could no
        longer be stored. The runtime binds lanes with ``object.__setattr__``, so
        only attribute assignments pay for this look-up, never the lanes' hot path.
        """
        lanes = type(self).__swim_lanes__
        if name in lanes:
            call = _LANE_WRITES.get(lanes[name].kind)
            how = f"self.{name}.{call}" if call else f"the methods of self.{name}"
            raise DefinitionError(
                f"{type(self).__name__}.{name} is a lane, not an attribute to assign: "
                f"change it with {how}"
            )
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        """Refuse ``del self.status`` where ``status`` is a lane: the next use would
        bind a fresh lane at its default, apart from the one links and the store know,
        and the state would be gone without a word. To empty a lane, use its methods."""
        if name in type(self).__swim_lanes__:
            raise DefinitionError(
                f"{type(self).__name__}.{name} is a lane, not an attribute to delete: "
                f"empty it with the methods of self.{name}"
            )
        object.__delattr__(self, name)

    # -- runtime plumbing ---------------------------------------------------------------

    def _attach(self, node_uri: str, context: AgentContext) -> None:
        """Called by the runtime once, right after creating the agent."""
        object.__setattr__(self, "node_uri", node_uri)
        object.__setattr__(self, "_context", context)
        object.__setattr__(self, "params", context.params)
        state: dict[str, Any] = {}
        object.__setattr__(self, "_namespace", state)
        linked = context.linked_lanes()
        observers = context.lane_observers()
        # (The store's notes go to lanes it observes alone: none without observers.)
        notes = context.change_notes() if observers else None
        for name, lane in type(self).__swim_lanes__.items():
            uplinks = linked.get(name) if linked else None
            if lane.eager or uplinks:
                bound = state[name] = lane._bind(self, uplinks, observers.get(name, ()), notes)
                object.__setattr__(self, name, bound)  # (see ``_namespace``)

    def lane(self, name: str) -> Lane:
        """This agent's bound lane called ``name``, bound now if it is a lazy one
        (KeyError when the agent has no such lane)."""
        bound: Lane | None = self._namespace.get(name)
        if bound is not None:
            return bound
        declared = type(self).__swim_lanes__[name]
        linked = self._context.linked_lanes()
        uplinks = linked.get(name) if linked else None
        observers = self._context.lane_observers().get(name, ())
        bound = declared._bind(self, uplinks, observers, self._context.change_notes())
        self._namespace[name] = bound
        object.__setattr__(self, name, bound)  # (see ``_namespace``)
        return bound

    def bound_lanes(self) -> list[Lane]:
        """The lanes bound so far (lazy lanes appear once something needed them)."""
        state = self._namespace
        return [state[name] for name in type(self).__swim_lanes__ if name in state]

    @property
    def downlinks(self) -> Mapping[int, Downlink]:
        """The links this agent holds open, by id."""
        return MappingProxyType(self._downlinks or {})

    # -- what agents do -----------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the epoch by the runtime's clock (a fake one in tests)."""
        return self._context.now()

    def command(self, node_uri: str, lane: str, value: Any = None) -> None:
        """Send ``value`` to ``lane`` of the agent at ``node_uri`` (this instance or another).

        Commands from one agent to another arrive in the order they were sent.
        """
        self._context.command(node_uri, lane, value)

    def publish(self, topic: str, value: Any, key: str | None = None) -> None:
        """Emit an insight record to the sink whose ``publish:`` name is ``topic``.

        ``topic`` is that sink's name, not the topic it writes to: with ``{publish:
        alerts, topic: device-alerts}`` an agent calls ``self.publish("alerts", ...)``;
        a sink with neither ``publish`` nor ``from`` is named by its topic. The record is
        keyed by ``key``, else by the last param of the agent's route (``"7"`` at
        ``/device/7``), else by its node URI (a route without params).

        Raises TypeError for a ``key`` that is not text (an id read from a JSON payload
        is often a number): the sink failed on it with "'int' object has no attribute
        'encode'", which named neither the key nor the fix.
        """
        if key is not None and not isinstance(key, str):
            raise TypeError(
                f"publish({topic!r}): the key must be text (str), not {type(key).__name__}"
                f" ({key!r:.40}); pass str(key)"
            )
        self._context.publish(topic, value, key)

    def downlink(
        self,
        node_uri: str,
        lane: str,
        *,
        on_set: Callable[[Any, Any], Any] | None = None,
        on_stale: Callable[[bool], Any] | None = None,
    ) -> ValueDownlink:
        """Link to a value (or counter) lane and keep a live replica of it.

        While a link with the same node, lane and callbacks is open, this returns it, so
        ``on_start`` (which runs at every load) may open the agent's links."""
        callbacks = {"on_set": on_set, "on_stale": on_stale}
        downlink = self._open(node_uri, lane, callbacks, map_like=False)
        assert isinstance(downlink, ValueDownlink)
        return downlink

    def map_downlink(
        self,
        node_uri: str,
        lane: str,
        *,
        on_update: Callable[[Any, Any, Any], Any] | None = None,
        on_remove: Callable[[Any, Any], Any] | None = None,
        on_stale: Callable[[bool], Any] | None = None,
    ) -> MapDownlink:
        """Link to a map-like lane and keep a live replica of it (the same link, while
        one with the same node, lane and callbacks is open, as :meth:`downlink`)."""
        callbacks = {"on_update": on_update, "on_remove": on_remove, "on_stale": on_stale}
        downlink = self._open(node_uri, lane, callbacks, map_like=True)
        assert isinstance(downlink, MapDownlink)
        return downlink

    def _open(
        self,
        node_uri: str,
        lane: str,
        callbacks: Mapping[str, Callable[..., Any] | None],
        map_like: bool,
    ) -> Downlink:
        names = {}
        for event, fn in callbacks.items():
            name = callback_name(self, fn, event)
            if name is not None:
                checked = (type(self), name, event)
                if checked not in _CHECKED_DOWNLINK_CALLBACKS:
                    # As a lane's callbacks are checked at class definition: an async one
                    # was called, its coroutine dropped, and the callback never ran. Once
                    # per class and callback: ``on_start`` opens its links at every load.
                    method = getattr(type(self), name)
                    check_callback(type(self), event, method, _DOWNLINK_ARITY[event], False)
                    _CHECKED_DOWNLINK_CALLBACKS.add(checked)
                names[event] = name
        node_uri = self._context.canonical(node_uri)  # (as the link is kept, and compared)
        # The same link open already is that link: ``on_start`` runs at every load, and
        # finds the links its last run opened restored (a new one each time, each
        # calling back on every change, piled up).
        for open_link in (self._downlinks or {}).values():
            if (
                open_link.node_uri == node_uri
                and open_link.lane == lane
                and open_link.join is None
                and open_link.callbacks == names
                and isinstance(open_link, MapDownlink) == map_like
            ):
                return open_link
        return self._open_link(node_uri, lane, names, None, map_like)

    def _open_link(
        self,
        node_uri: str,
        lane: str,
        callbacks: dict[str, str],
        join: tuple[str, Any] | None,
        map_like: bool | None,
        link_id: int | None = None,
    ) -> Downlink:
        """Create and register a downlink (also used by join lanes and restores)."""
        node_uri = self._context.canonical(node_uri)
        kind = self._context.lane_kind(node_uri, lane)
        if map_like is None:
            map_like = kind in MAP_KINDS
        if map_like and kind not in MAP_KINDS:
            raise DefinitionError(f"{node_uri}#{lane} is a {kind} lane: use downlink()")
        if not map_like and kind not in VALUE_KINDS:
            raise DefinitionError(f"{node_uri}#{lane} is a {kind} lane: use map_downlink()")
        fresh = link_id is None
        if link_id is None:
            link_id = self._next_link_id
        self._next_link_id = max(self._next_link_id, link_id + 1)
        cls = MapDownlink if map_like else ValueDownlink
        downlink = cls(self, link_id, node_uri, lane, kind, callbacks, join)
        if self._downlinks is None:
            self._downlinks = {}
        self._downlinks[link_id] = downlink
        try:
            self._context.open_downlink(downlink)
        except BaseException:
            # The target's agent could not load (its stored state no longer fits): no
            # half-open link stays behind, to be stored with this agent. (Not in a
            # restore: one that fails drops the whole agent, stored links untouched.)
            if fresh:
                downlink.close()
            raise
        return downlink

    def _forget_link(self, downlink: Downlink) -> None:
        if self._downlinks is not None:
            self._downlinks.pop(downlink.id, None)

    def schedule(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Call the agent method ``fn(*args)`` once, ``delay`` seconds from now.

        Pending timers survive passivation and restarts; ``args`` must be JSON values.
        """
        if not delay == delay:  # NaN: due at a time no clock reaches, ahead of every timer
            raise ValueError(f"delay must be a number of seconds, got {delay}")
        name = callback_name(self, fn, "a timer callback")
        assert name is not None
        return self._context.schedule(delay, name, args, None)

    def every(self, period: float, fn: Callable[[], Any]) -> Timer:
        """Call the agent method ``fn()`` every ``period`` seconds.

        One repeating timer per method: calling ``every`` again for the same method
        (as ``on_start`` does after each activation) returns the timer already running.
        With another ``period`` (asked for now, or a deploy changed it since the timer
        was stored), that timer is re-armed: next due ``period`` seconds from now, then
        every ``period``.
        """
        if not period > 0:  # (NaN too, as in ``schedule``)
            raise ValueError(f"period must be positive, got {period}")
        name = callback_name(self, fn, "a timer callback")
        assert name is not None
        return self._context.schedule(period, name, (), period)

    def pending_timers(self, fn: Callable[..., Any] | None = None) -> list[Timer]:
        """This agent's pending timers that call the method ``fn`` (all when None),
        earliest first, to cancel one or to see that it is set.

        Timers outlive the agent object: after a passivation or a restart, a handle the
        old object kept (``self.alarm = self.schedule(...)``) is gone with it, while its
        timer is still pending. This is how the agent reaches that timer again.
        """
        name = callback_name(self, fn, "a timer callback")
        return self._context.pending_timers(name)

    # -- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        """Runs in the agent's first turn after each activation."""

    def on_stop(self) -> None:
        """Runs before the agent is passivated or the runtime stops."""
