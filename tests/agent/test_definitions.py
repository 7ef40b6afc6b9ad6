"""Bad agent definitions fail when the class is created, naming the class and lane."""

from typing import Any

import pytest

from swimstream import Agent, CommandLane, DefinitionError, MapLane, ValueLane


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
