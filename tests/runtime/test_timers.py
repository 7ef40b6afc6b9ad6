"""Timers under the fake clock: schedule, every, cancel, order, idempotent every."""

import asyncio
from datetime import datetime
from typing import Any

import pytest

from swimstream import Agent, CommandLane, ValueLane
from swimstream.runtime import Plane
from swimstream.runtime.agent_record import decode_timers
from swimstream.testing import FakeClock, open_plane


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


class Reminder(Agent):
    remind = CommandLane[str]()

    @remind.on_command
    def on_remind(self, when: str) -> None:
        # A datetime cannot be stored with the agent; a string can.
        arg: Any = datetime.fromisoformat(when) if when != "plain" else when
        self.schedule(60.0, self.ring, arg)

    def ring(self, when: Any) -> None: ...


async def test_timer_arguments_that_cannot_be_stored_fail_the_callback_that_scheduled_them() -> (
    None
):
    """Pending timers are stored with the agent. Found at the next checkpoint, an argument
    that cannot be stored would stop the instance; at schedule time it fails the callback
    (its record goes to the dead letters, naming the problem) and nothing else."""
    async with open_plane({"/reminder/:id": Reminder}) as plane:
        await plane.command("/reminder/a", "remind", "2026-11-22T08:00:00")
        await plane.command("/reminder/a", "remind", "plain")
        await plane.settle()
        assert plane.statistics().callback_failures == 1
        assert "arguments must be JSON values" in str(plane.failures.last_error)
        assert plane.timers_of("/reminder/a") is not None  # the plain one is pending


class Poller(Agent):
    """Ticks every second, and sometimes waits on I/O in an async command meanwhile."""

    ticks = ValueLane[list[float]](default=[])
    fetch = CommandLane[None]()
    io_done: asyncio.Event

    def on_start(self) -> None:
        self.every(1.0, self.tick)

    def tick(self) -> None:
        self.ticks.set([*self.ticks.get(), self.now()])

    @fetch.on_command
    async def on_fetch(self, _: None) -> None:
        await Poller.io_done.wait()


async def _advance_while_busy(plane: Plane, seconds: int) -> None:
    """``plane.advance`` waits for the agent to settle; this only lets due timers fire."""
    clock = plane.clock
    assert isinstance(clock, FakeClock)
    for _ in range(seconds):
        clock.advance(1.0)
        for _ in range(100):  # until the timer loop has taken the tick now due
            if (plane.timers.next_due() or 0.0) > clock.time():
                break
            await asyncio.sleep(0)


async def test_a_repeating_timer_of_a_busy_agent_fires_once_after_not_as_a_burst() -> None:
    """Each period used to queue another tick behind the busy agent: 100 seconds of I/O
    left 100 ticks in its mailbox (against its capacity), run back to back after."""
    Poller.io_done = asyncio.Event()
    async with open_plane({"/poller/:id": Poller}) as plane:
        start = plane.clock.time()
        await plane.command("/poller/p", "fetch")
        await _advance_while_busy(plane, 100)
        queued = plane.queued()
        Poller.io_done.set()  # (before any assert: the plane's close waits for the agent)
        await plane.settle()
        assert queued == 1  # the one tick due first, waiting for the agent
        await plane.advance(2.0)
        assert [at - start for at in plane.get("/poller/p", "ticks")] == [100.0, 101.0, 102.0]


class Flaky(Agent):
    fetch = CommandLane[None]()

    def on_start(self) -> None:
        self.every(1.0, self.tick)

    def tick(self) -> None:
        raise RuntimeError("the probe is down")


async def test_a_repeating_timer_whose_tick_raises_keeps_its_period() -> None:
    async with open_plane({"/flaky/:id": Flaky}) as plane:
        plane.agent("/flaky/f")
        await plane.advance(3.0)
        assert plane.statistics().callback_failures == 3


class Sampler(Agent):
    """Samples every 10 s from ``on_start``; a command asks for another period."""

    period = 10.0
    samples = ValueLane[list[float]](default=[])
    rate = CommandLane[float]()

    def on_start(self) -> None:
        self.every(type(self).period, self.sample)

    @rate.on_command
    def on_rate(self, period: float) -> None:
        self.every(period, self.sample)

    def sample(self) -> None:
        self.samples.set([*self.samples.get(), self.now()])


class FastSampler(Sampler):
    """The next version of the code: samples every 2 s."""

    period = 2.0


async def test_every_with_another_period_re_arms_the_running_timer() -> None:
    """It used to return the running timer unchanged: asked for every 2 s, it went on
    ticking every 10 s."""
    async with open_plane({"/sampler/:id": Sampler}) as plane:
        start = plane.clock.time()
        plane.agent("/sampler/s")
        await plane.advance(13.0)
        (timer,) = plane.timers.for_node("/sampler/s")
        await plane.command("/sampler/s", "rate", 2.0)
        await plane.advance(6.0)
        assert [at - start for at in plane.get("/sampler/s", "samples")] == [10.0, 15.0, 17.0, 19.0]
        assert plane.timers.for_node("/sampler/s") == [timer]  # the same timer, re-armed


async def test_a_restored_timer_takes_the_period_the_deployed_code_asks_for() -> None:
    clock = FakeClock()
    async with open_plane({"/sampler/:id": Sampler}, clock=clock) as plane:
        plane.agent("/sampler/s")
        await plane.settle()
        stored = plane.timers_of("/sampler/s")
        await plane.close(put_away=False)
    assert stored is not None
    async with open_plane({"/sampler/:id": FastSampler}, clock=clock) as plane:
        start = clock.time()
        plane.restore_timers("/sampler/s", decode_timers(stored))
        plane.agent("/sampler/s")  # its on_start asks for every 2 s
        await plane.advance(5.0)
        assert [at - start for at in plane.get("/sampler/s", "samples")] == [2.0, 4.0]


class Snooze(Agent):
    """Sets a wake-up call and takes it back, with the agent passivated in between."""

    fired = ValueLane[list[str]](default=[])
    arm = CommandLane[float]()
    disarm = CommandLane[None]()

    def on_start(self) -> None:
        self.every(3600.0, self.check)

    @arm.on_command
    def on_arm(self, delay: float) -> None:
        self.schedule(delay, self.ring, f"in {delay:g} s")

    @disarm.on_command
    def on_disarm(self, _: None) -> None:
        for timer in self.pending_timers(self.ring):
            timer.cancel()

    def ring(self, label: str) -> None:
        self.fired.set([*self.fired.get(), label])

    def check(self) -> None: ...


async def test_a_one_shot_timer_set_before_a_passivation_can_be_cancelled_after_it() -> None:
    """The handle ``schedule`` returns was the only way to cancel a timer, and it is gone
    with the agent object that kept it: the reloaded agent could not reach its pending
    timer, which rang all the same."""
    async with open_plane({"/snooze/:id": Snooze}) as plane:
        await plane.command("/snooze/a", "arm", 60.0)
        await plane.settle()
        assert plane.passivate("/snooze/a")
        await plane.command("/snooze/a", "disarm")
        await plane.settle()
        await plane.advance(120.0)
        assert plane.get("/snooze/a", "fired") == []
        assert plane.statistics().callback_failures == 0
        assert [t.method for t in plane.timers.for_node("/snooze/a")] == ["check"]


async def test_pending_timers_are_the_restored_ones_after_a_restart_earliest_first() -> None:
    clock = FakeClock()
    async with open_plane({"/snooze/:id": Snooze}, clock=clock) as plane:
        for delay in (90.0, 30.0, 60.0):
            await plane.command("/snooze/a", "arm", delay)
        await plane.settle()
        stored = plane.timers_of("/snooze/a")
        await plane.close(put_away=False)
    assert stored is not None
    async with open_plane({"/snooze/:id": Snooze}, clock=clock) as plane:
        plane.restore_timers("/snooze/a", decode_timers(stored))
        snooze = plane.agent("/snooze/a")
        assert isinstance(snooze, Snooze)
        rings = snooze.pending_timers(snooze.ring)
        assert [t.due - clock.time() for t in rings] == [30.0, 60.0, 90.0]
        assert len(snooze.pending_timers()) == 4  # with the hourly check
        rings[0].cancel()
        await plane.command("/snooze/a", "arm", 10.0)
        await plane.advance(75.0)
        assert plane.get("/snooze/a", "fired") == ["in 10 s", "in 60 s"]


class Sentry(Agent):
    """An alarm and a patrol, both called off by a record that may wait behind I/O."""

    rang = ValueLane[list[str]](default=[])
    arm = CommandLane[None]()
    fetch = CommandLane[None]()
    stand_down = CommandLane[None]()
    io_done: asyncio.Event

    @arm.on_command
    def on_arm(self, _: None) -> None:
        self.schedule(2.0, self.alarm)
        self.every(1.0, self.patrol)

    @fetch.on_command
    async def on_fetch(self, _: None) -> None:
        await Sentry.io_done.wait()

    @stand_down.on_command
    def on_stand_down(self, _: None) -> None:
        for timer in self.pending_timers():
            timer.cancel()

    def alarm(self) -> None:
        self.rang.set([*self.rang.get(), "alarm"])

    def patrol(self) -> None:
        self.rang.set([*self.rang.get(), "patrol"])


async def test_a_timer_cancelled_by_a_message_queued_ahead_of_its_tick_does_not_fire() -> None:
    """A due timer's tick waits in the mailbox behind what came first; a one-shot used to
    leave ``pending_timers`` as it fell due (the record queued before it, meant to call
    it off, could not reach it), and a cancelled tick already queued ran all the same."""
    Sentry.io_done = asyncio.Event()
    async with open_plane({"/sentry/:id": Sentry}) as plane:
        await plane.command("/sentry/s", "arm")
        await plane.settle()
        await plane.command("/sentry/s", "fetch")  # busy on I/O...
        await plane.command("/sentry/s", "stand_down")  # ...with this record queued
        await _advance_while_busy(plane, 3)  # the alarm and a patrol fall due behind it
        Sentry.io_done.set()
        await plane.settle()
        await plane.advance(10.0)
        assert plane.get("/sentry/s", "rang") == []
        assert plane.timers.for_node("/sentry/s") == []
        assert plane.statistics().callback_failures == 0


class Relay(Agent):
    """Re-arms its one-shot from its own callback when none is pending."""

    rings = ValueLane[int](default=0)
    start = CommandLane[None]()

    @start.on_command
    def on_start_relay(self, _: None) -> None:
        self.schedule(1.0, self.ring)

    def ring(self) -> None:
        self.rings.set(self.rings.get() + 1)
        if self.rings.get() < 3 and not self.pending_timers(self.ring):
            self.schedule(1.0, self.ring)


async def test_a_one_shot_is_no_longer_pending_inside_its_own_callback() -> None:
    """(It stays pending until its tick begins, not until the tick ends.)"""
    async with open_plane({"/relay/:id": Relay}) as plane:
        await plane.command("/relay/r", "start")
        await plane.advance(10.0)
        assert plane.get("/relay/r", "rings") == 3
        assert plane.timers.for_node("/relay/r") == []


class Ticker(Agent):
    """Counts the ticks of ``every(period)``, and rings a one-shot set ten periods
    ahead; the period is read from the route (``/ticker/0.7``)."""

    ticks = ValueLane[int](default=0)
    rang = ValueLane[bool](default=False)

    def on_start(self) -> None:
        period = float(self.params["period"])
        self.every(period, self.tick)
        if not self.pending_timers(self.ring) and not self.rang.get():
            self.schedule(period * 10, self.ring)

    def tick(self) -> None:
        self.ticks.set(self.ticks.get() + 1)

    def ring(self) -> None:
        self.rang.set(True)


PERIODS = ["0.1", "0.3", "0.7", "0.01", "0.013", "1.1"]
"""Periods that, added in floats to today's epoch, round one way or the other."""


@pytest.mark.parametrize("period", PERIODS)
async def test_a_one_shot_fires_in_the_advance_that_reaches_it_in_small_steps(
    period: str,
) -> None:
    async with open_plane({"/ticker/:period": Ticker}) as plane:
        node = f"/ticker/{period}"
        plane.agent(node)
        await plane.settle()
        rang = []
        for _ in range(10):
            await plane.advance(float(period))
            rang.append(plane.get(node, "rang"))
        assert rang == [False] * 9 + [True]


@pytest.mark.parametrize("per_advance", [1, 10])
@pytest.mark.parametrize("period", PERIODS)
async def test_a_repeating_timer_keeps_time_with_the_advances(
    period: str, per_advance: int
) -> None:
    async with open_plane({"/ticker/:period": Ticker}) as plane:
        node = f"/ticker/{period}"
        plane.agent(node)
        await plane.settle()
        late = []
        for step in range(1, 31):
            await plane.advance(float(period) * per_advance)
            if plane.get(node, "ticks") != step * per_advance:
                late.append((step * per_advance, plane.get(node, "ticks")))
        assert late[:2] == []


@pytest.mark.timeout(10)
async def test_a_timer_due_after_nan_seconds_fails_its_callback_and_stops_no_other() -> None:
    """A NaN delay (from a record's JSON, which may hold NaN) made a timer due at NaN,
    which no time ever reaches nor passes: at the heap's top it kept every other timer
    of the plane from firing, and the timer task spun without yielding (a test hung)."""
    async with open_plane({"/alarm/:id": Alarm}) as plane:
        await plane.command("/alarm/a", "arm", {"delay": float("nan"), "label": "never"})
        await plane.command("/alarm/b", "arm", {"delay": 5.0, "label": "rung"})
        await plane.settle()
        await plane.advance(10.0)
        assert [label for label, _ in plane.get("/alarm/a", "fired")] == ["beat"]
        assert [label for label, _ in plane.get("/alarm/b", "fired")] == ["rung", "beat"]
        assert "delay must be a number of seconds" in str(plane.failures.last_error)
        with pytest.raises(ValueError, match="period must be positive"):
            plane.agent("/alarm/a").every(float("nan"), plane.agent("/alarm/a").heartbeat)  # type: ignore[attr-defined]


async def test_a_restored_timer_of_a_route_a_deploy_removed_is_dropped_and_the_rest_fire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stored timers are re-armed at start without loading their agents: one whose
    agent's route a deploy removed raised as it fell due, and ended the plane's timer
    task (the instance stopped), where a stored link to such a route is dropped."""
    clock = FakeClock()
    async with open_plane({"/alarm/:id": Alarm, "/sampler/:id": Sampler}, clock=clock) as plane:
        await plane.command("/sampler/s", "rate", 2.0)
        await plane.settle()
        stored = plane.timers_of("/sampler/s")
        await plane.close(put_away=False)
    assert stored is not None
    async with open_plane({"/alarm/:id": Alarm}, clock=clock) as plane:
        start = clock.time()
        plane.restore_timers("/sampler/s", decode_timers(stored))
        await plane.command("/alarm/a", "arm", {"delay": 5.0, "label": "rung"})
        await plane.advance(10.0)
        assert plane.crashed is None
        fired = [(label, at - start) for label, at in plane.get("/alarm/a", "fired")]
        assert fired == [("rung", 5.0), ("beat", 10.0)]
        assert not plane.timers.for_node("/sampler/s")
        assert "a stored timer of /sampler/s is dropped" in caplog.text


class Renamed(Agent):
    """The next version of :class:`Sampler`'s code: ``sample`` is now ``take_sample``,
    and ``on_start`` no longer arms a timer."""

    samples = ValueLane[list[float]](default=[])

    def take_sample(self) -> None:
        self.samples.set([*self.samples.get(), self.now()])


async def test_a_restored_timer_of_a_method_a_deploy_removed_is_dropped_not_failed_each_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stored periodic timer whose method the agent's class no longer has failed its
    callback at every tick, for ever (a failure logged and counted every period)."""
    clock = FakeClock()
    async with open_plane({"/sampler/:id": Sampler}, clock=clock) as plane:
        await plane.command("/sampler/s", "rate", 2.0)
        await plane.settle()
        stored = plane.timers_of("/sampler/s")
        await plane.close(put_away=False)
    assert stored is not None
    async with open_plane({"/sampler/:id": Renamed}, clock=clock) as plane:
        plane.restore_timers("/sampler/s", decode_timers(stored))
        await plane.advance(10.0)
        assert plane.failures.last_error is None
        assert not plane.timers.for_node("/sampler/s")
        assert plane.timers_of("/sampler/s") is None  # (and the store is told)
    assert caplog.text.count("a stored timer of /sampler/s is dropped") == 1
