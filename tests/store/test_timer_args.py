"""Timer arguments are stored with their agent: what cannot come back is refused when
the timer is scheduled.

An object keyed by a tuple packed (msgpack writes the tuple as an array) and did not
unpack (an array is no dict key): the agent's pending timers were stored unreadable,
and every start, re-arming the stored timers, stopped on them.
"""

from __future__ import annotations

from typing import Any

import pytest

from swimstream import Agent, CommandLane
from swimstream.runtime.agent_record import TimerSpec, decode_timers, dump_timers
from swimstream.testing import open_plane


class Reminder(Agent):
    remind = CommandLane[Any]()

    @remind.on_command
    def on_remind(self, which: str) -> None:
        self.schedule(60.0, self.ring, ARGS[which])

    def ring(self, what: Any) -> None: ...


ARGS: dict[str, Any] = {
    "tuple keys": {("tower", 7): 1},
    "nested tuple keys": [{"by pair": {(1, 2): "x"}}],
    "scalar keys": {"a": 1, 2: [3.5, None], True: {"b": False}},
}


@pytest.mark.parametrize("which", ["tuple keys", "nested tuple keys"])
async def test_an_argument_that_would_not_come_back_fails_the_callback(which: str) -> None:
    async with open_plane({"/reminder/:id": Reminder}) as plane:
        await plane.command("/reminder/a", "remind", which)
        await plane.settle()
        assert plane.statistics().callback_failures == 1
        assert "arguments must be JSON values" in str(plane.failures.last_error)
        assert plane.timers_of("/reminder/a") is None


async def test_an_argument_of_objects_keyed_by_scalars_is_stored_and_comes_back() -> None:
    async with open_plane({"/reminder/:id": Reminder}) as plane:
        await plane.command("/reminder/a", "remind", "scalar keys")
        await plane.settle()
        assert plane.statistics().callback_failures == 0
        stored = plane.timers_of("/reminder/a")
        assert stored is not None
        assert decode_timers(stored)[0].args == (ARGS["scalar keys"],)
        again = dump_timers(decode_timers(stored))
        assert again is not None and decode_timers(again) == decode_timers(stored)
        assert isinstance(decode_timers(stored)[0], TimerSpec)
