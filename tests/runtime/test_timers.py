"""Timers under the fake clock: schedule, every, cancel, order, idempotent every."""

from typing import Any

from swimstream import Agent, CommandLane, ValueLane
from swimstream.testing import open_plane


class Alarm(Agent):
    fired = ValueLane[list[Any]](default=[])
    arm = CommandLane[dict[str, Any]]()
    disarm = CommandLane[None]()

    def on_start(self) -> None:
        self.heartbeat_timer = self.every(10.0, self.heartbeat)

    @arm.on_command
    def on_arm(self, spec: dict[str, Any]) -> None:
        self.last_timer = self.schedule(spec["delay"], self.ring, spec["label"])

    @disarm.on_command
    def on_disarm(self, _: None) -> None:
        self.last_timer.cancel()

    def ring(self, label: str) -> None:
        self.fired.set([*self.fired.get(), [label, self.now()]])

    def heartbeat(self) -> None:
        self.fired.set([*self.fired.get(), ["beat", self.now()]])


async def test_one_shot_timers_fire_once_in_due_order_at_their_time() -> None:
    async with open_plane({"/alarm/:id": Alarm}) as plane:
        start = plane.clock.time()
        await plane.command("/alarm/a", "arm", {"delay": 3.0, "label": "late"})
        await plane.command("/alarm/a", "arm", {"delay": 1.5, "label": "early"})
        await plane.settle()
        await plane.advance(5.0)
        fired = [(label, at - start) for label, at in plane.get("/alarm/a", "fired")]
        assert fired == [("early", 1.5), ("late", 3.0)]
        await plane.advance(4.0)
        assert [label for label, _ in plane.get("/alarm/a", "fired")] == ["early", "late"]


async def test_every_repeats_and_is_not_duplicated_by_restarts_of_on_start() -> None:
    async with open_plane({"/alarm/:id": Alarm}) as plane:
        start = plane.clock.time()
        await plane.command("/alarm/a", "arm", {"delay": 100.0, "label": "x"})
        await plane.settle()
        agent = plane.agent("/alarm/a")
        agent.on_start()  # as after a reload: must not add a second heartbeat
        await plane.advance(35.0)
        beats = [at - start for label, at in plane.get("/alarm/a", "fired") if label == "beat"]
        assert beats == [10.0, 20.0, 30.0]
        assert len(plane.timers.for_node("/alarm/a")) == 2


async def test_a_cancelled_timer_never_fires() -> None:
    async with open_plane({"/alarm/:id": Alarm}) as plane:
        await plane.command("/alarm/a", "arm", {"delay": 2.0, "label": "nope"})
        await plane.command("/alarm/a", "disarm")
        await plane.settle()
        await plane.advance(5.0)
        assert [label for label, _ in plane.get("/alarm/a", "fired")] == []
        assert not plane.agent("/alarm/a").last_timer.pending  # type: ignore[attr-defined]
