"""Recency moves in steps of ``RECENCY_STEP``: an agent used many times a second takes
its place in the least recently used order once a second, not at every batch."""

from swimstream.runtime import FakeClock
from swimstream.runtime.scheduler import RECENCY_STEP, Scheduler
from swimstream.testing import open_plane
from tests.runtime.test_passivation import ROUTES


async def test_an_agent_used_again_within_a_step_keeps_its_place() -> None:
    clock = FakeClock()
    async with open_plane(ROUTES, idle_timeout=100.0, clock=clock) as plane:
        plane.note_time()
        for n in ("a", "b", "c"):
            assert plane.submit(f"/meter/{n}", "sample", 1.0, None, True)
        await plane.settle()
        clock.advance(RECENCY_STEP / 2)
        plane.note_time()  # (a batch half a step later: the same noted time)
        assert plane.submit("/meter/a", "sample", 2.0, None, True)
        assert plane.active_node_uris() == ["/meter/a", "/meter/b", "/meter/c"]
        clock.advance(RECENCY_STEP / 2)
        plane.note_time()  # (a step after the noted time: a new one)
        assert plane.submit("/meter/a", "sample", 3.0, None, True)
        assert plane.active_node_uris() == ["/meter/b", "/meter/c", "/meter/a"]
        assert plane.get("/meter/a", "level") == 3.0  # (every turn ran all the same)


def test_a_clock_set_back_is_noted_at_once() -> None:
    """A wall clock stepped back (NTP) must not hold the noted time in the future until
    the clock catches up: every agent used meanwhile would look used then."""
    readings = [1_000.0]
    scheduler = Scheduler(lambda *_: None, {}, lambda: readings[0])
    scheduler.note_time()
    assert scheduler.now == 1_000.0
    readings[0] = 1_000.0 + RECENCY_STEP / 2
    scheduler.note_time()
    assert scheduler.now == 1_000.0
    readings[0] = 990.0
    scheduler.note_time()
    assert scheduler.now == 990.0
    assert scheduler.drain(1) == 0 and scheduler.now == 990.0
    readings[0] = 990.0 + RECENCY_STEP
    assert scheduler.drain(1) == 0 and scheduler.now == 990.0 + RECENCY_STEP
