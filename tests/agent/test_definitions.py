"""Bad agent definitions fail when the class is created, naming the class and lane."""

import abc
import dis
import io
import sys
from typing import Any

import pytest

from swimstream import Agent, CommandLane, DefinitionError, MapLane, ValueLane
from swimstream.testing import open_plane


def test_on_set_with_the_wrong_arity_names_class_lane_and_expected_signature() -> None:
    with pytest.raises(DefinitionError) as caught:

        class Thermostat(Agent):
            target = ValueLane[float](default=20.0)

            @target.on_set
            def changed(self, new: float) -> None: ...

    message = str(caught.value)
    assert "Thermostat.target.on_set" in message
    assert "(self, new, old)" in message


def test_on_update_missing_the_old_value_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"Ledger\.entries\.on_update.*key, new, old"):

        class Ledger(Agent):
            entries = MapLane[str, int]()

            @entries.on_update
            def updated(self, key: str, new: int) -> None: ...


def test_state_change_callbacks_must_not_be_async() -> None:
    with pytest.raises(DefinitionError, match="must be plain functions"):

        class Slow(Agent):
            level = ValueLane[int]()

            @level.on_set
            async def changed(self, new: int, old: int) -> None: ...


def test_an_async_on_stop_is_refused_when_the_class_is_created() -> None:
    """Passivation runs ``on_stop`` and goes on: an async one was taken here, then its
    coroutine closed unrun at every passivation, each time a failure."""
    with pytest.raises(DefinitionError, match=r"Flusher\.on_stop: on_stop is async"):

        class Flusher(Agent):
            async def on_stop(self) -> None: ...  # type: ignore[override]


def test_command_callbacks_may_be_async_and_defaults_are_fine() -> None:
    class Fetcher(Agent):
        fetch = CommandLane[str]()
        level = ValueLane[int]()

        @fetch.on_command
        async def on_fetch(self, url: str) -> None: ...

        @level.on_set
        def changed(self, new: int, old: int, extra: Any = None) -> None: ...

    assert set(Fetcher.__swim_lanes__) == {"fetch", "level"}


def test_a_lane_takes_one_callback_per_event() -> None:
    with pytest.raises(DefinitionError, match="already has an on_command"):

        class Twice(Agent):
            go = CommandLane[int]()

            @go.on_command
            def first(self, value: int) -> None: ...

            @go.on_command
            def second(self, value: int) -> None: ...


def test_agents_cannot_take_constructor_arguments() -> None:
    with pytest.raises(DefinitionError, match="__init__"):

        class Configured(Agent):
            def __init__(self, threshold: int) -> None:
                super().__init__()


def test_lanes_are_inherited_and_extended() -> None:
    class Base(Agent):
        status = ValueLane[str]()

    class Child(Base):
        extra = MapLane[str, int]()

    assert list(Child.__swim_lanes__) == ["status", "extra"]
    assert Child.__swim_lanes__["status"].kind == "value"


def test_bounded_map_needs_a_positive_bound() -> None:
    with pytest.raises(DefinitionError, match="max_entries"):
        MapLane[str, int](max_entries=0)


class Reading(Agent):
    """A base: each set of ``level`` is logged by ``on_level``, which subclasses replace."""

    __swim_base__ = True
    level = ValueLane[int](default=0)
    log = ValueLane[list[str]](default=[])
    go = CommandLane[int]()

    @go.on_command
    def on_go(self, value: int) -> None:
        self.level.set(value)

    @level.on_set
    def on_level(self, new: int, old: int) -> None:
        self.log.set([*self.log.get(), "base"])


class PlainReading(Reading):
    pass


class LoudReading(Reading):
    def on_level(self, new: int, old: int) -> None:
        self.log.set([*self.log.get(), "loud"])


class ExtendedReading(LoudReading):
    def on_level(self, new: int, old: int) -> None:
        super().on_level(new, old)
        self.log.set([*self.log.get(), "extended"])


class Quiet(Agent):
    __swim_base__ = True
    level = ValueLane[int](default=0)
    log = ValueLane[list[str]](default=[])


class Noisy(Quiet):
    @Quiet.level.on_set
    def on_level(self, new: int, old: int) -> None:
        self.log.set([*self.log.get(), "noisy"])


class StillQuiet(Quiet):
    pass


async def test_a_subclass_overrides_a_callback_by_defining_its_method() -> None:
    routes = {
        "/plain/:id": PlainReading,
        "/loud/:id": LoudReading,
        "/extended/:id": ExtendedReading,
    }
    async with open_plane(routes) as plane:
        for route in routes:
            await plane.command(route.replace(":id", "1"), "go", 5)
        await plane.settle()
        assert plane.get("/plain/1", "log") == ["base"]
        assert plane.get("/loud/1", "log") == ["loud"]
        assert plane.get("/extended/1", "log") == ["loud", "extended"]


async def test_a_callback_a_subclass_decorates_onto_an_inherited_lane_is_its_own() -> None:
    async with open_plane({"/noisy/:id": Noisy, "/still/:id": StillQuiet}) as plane:
        await plane.command("/noisy/1", "level", 1)
        await plane.command("/still/1", "level", 1)
        await plane.settle()
        assert plane.get("/noisy/1", "log") == ["noisy"]
        assert plane.get("/still/1", "log") == []
    assert Quiet.level.callback("on_set") is None


def test_an_overriding_callback_is_checked_as_the_one_it_replaces() -> None:
    with pytest.raises(DefinitionError, match=r"Wrong\.level\.on_set.*\(self, new, old\)"):

        class Wrong(Reading):
            def on_level(self, new: int) -> None:  # type: ignore[override]
                ...


class _Shaped(abc.ABC):
    """A mixin of the user's own, with a metaclass of its own (ABCMeta)."""

    @abc.abstractmethod
    def shape(self) -> str: ...


class Square(Agent, _Shaped):
    sides = ValueLane[int](default=4)
    touch = CommandLane[int]()

    def shape(self) -> str:
        return "square"

    @touch.on_command
    def on_touch(self, by: int) -> None:
        self.sides.set(self.sides.get() + by)


async def test_an_agent_mixes_with_a_class_that_has_a_metaclass_of_its_own() -> None:
    """Agent classes are plain classes: a metaclass of the framework's own would make
    ``class Square(Agent, abc.ABC)`` a metaclass conflict."""
    async with open_plane({"/square/:id": Square}) as plane:
        await plane.command("/square/1", "touch", 1)
        await plane.settle()
        assert plane.get("/square/1", "sides") == 5
    assert type(Square) is abc.ABCMeta


def test_a_class_hands_back_its_lane_declarations_and_keeps_what_replaces_one() -> None:
    """Lane declarations are kept wrapped in the class (``keep_declared``): reading one
    from the class gives the declaration, as written; an agent reads its bound lane;
    a subclass that gives a lane's name to a method keeps its method."""

    class Base(Agent):
        status = ValueLane[str](default="idle")

    class Child(Base):
        extra = MapLane[str, int]()

    class Renamed(Base):
        def status(self) -> str:  # type: ignore[override]
            return "a method"

    assert isinstance(Base.status, ValueLane) and Base.status.name == "status"
    assert Child.status is Base.status
    assert isinstance(Child.extra, MapLane)
    assert Renamed.status(Renamed()) == "a method"
    assert list(Child.__swim_lanes__) == ["status", "extra"]


class Gauge(Agent):
    level = ValueLane[int](default=0)


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="CPython 3.11's specializer")
async def test_reading_a_lane_from_an_agent_is_specialized_by_the_interpreter() -> None:
    """CPython 3.11 never specializes reading an attribute whose class holds an object
    of a class defined in Python: each ``self.level`` took the generic look-up until
    the class kept its declarations wrapped in a ``staticmethod``."""

    def read(agent: Agent) -> ValueLane[int]:
        assert isinstance(agent, Gauge)
        return agent.level

    async with open_plane({"/gauge/:id": Gauge}) as plane:
        agents: list[Agent] = []
        for n in range(4):
            await plane.call(f"/gauge/{n}", agents.append)
        for _ in range(50):
            for agent in agents:
                assert read(agent) is agent._namespace["level"]
    listing = io.StringIO()
    dis.dis(read, adaptive=True, file=listing)
    assert "LOAD_ATTR_INSTANCE_VALUE" in listing.getvalue(), listing.getvalue()
