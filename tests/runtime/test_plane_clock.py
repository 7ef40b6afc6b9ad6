"""The plane's hybrid logical clock is ticked: it reads the wall once a drain of the
mailboxes, a batch of a source (``Plane.note_time``) and a passivation pass, and the
writes between stamp logically after the tick (``swimstream.crdt.clock``)."""

from swimstream import Agent, CommandLane, ValueLane
from swimstream.crdt import RegisterSnapshot, timestamp_logical, timestamp_millis
from swimstream.runtime import FakeClock, Plane
from swimstream.testing import open_plane

START = 1_700_000_000.0


class Gauge(Agent):
    level = ValueLane[float](default=0.0)
    sample = CommandLane[float]()

    @sample.on_command
    def on_sample(self, value: float) -> None:
        self.level.set(value)


def stamp(plane: Plane, node_uri: str) -> int:
    snapshot = plane.lane(node_uri, "level").snapshot()
    assert isinstance(snapshot, RegisterSnapshot)
    return snapshot.stamp[0]


async def start(plane: Plane, *node_uris: str) -> None:
    """Make the agents (their ``on_start`` queued, a command would be too)."""
    for node_uri in node_uris:
        plane.agent(node_uri)
    await plane.settle()


async def test_a_drain_ticks_the_clock_for_its_turns() -> None:
    clock = FakeClock(START)
    async with open_plane({"/gauge/:id": Gauge}, clock=clock) as plane:
        await plane.command("/gauge/a", "sample", 1.0)
        await plane.settle()
        assert timestamp_millis(stamp(plane, "/gauge/a")) == START * 1000
        clock.advance(10.0)
        await plane.command("/gauge/a", "sample", 2.0)
        await plane.settle()
        assert timestamp_millis(stamp(plane, "/gauge/a")) == (START + 10.0) * 1000


async def test_a_batch_ticks_the_clock_and_its_writes_follow_logically() -> None:
    clock = FakeClock(START)
    async with open_plane({"/gauge/:id": Gauge}, clock=clock) as plane:
        await start(plane, "/gauge/a", "/gauge/b")
        clock.advance(10.0)
        plane.note_time()  # (as a source does before each batch it routes)
        assert plane.submit("/gauge/a", "sample", 1.0, None, True)
        first = stamp(plane, "/gauge/a")
        assert timestamp_millis(first) == (START + 10.0) * 1000
        clock.advance(5.0)  # within the batch: no reading of the wall
        assert plane.submit("/gauge/b", "sample", 1.0, None, True)
        assert timestamp_millis(stamp(plane, "/gauge/b")) == (START + 10.0) * 1000
        assert timestamp_logical(stamp(plane, "/gauge/b")) > timestamp_logical(first)


async def test_a_passivation_pass_ticks_the_clock() -> None:
    clock = FakeClock(START)
    async with open_plane({"/gauge/:id": Gauge}, clock=clock) as plane:
        await start(plane, "/gauge/a")
        clock.advance(3.0)
        plane.passivate_idle()  # (the housekeeping's, at least once a second)
        assert plane.submit("/gauge/a", "sample", 1.0, None, True)
        assert timestamp_millis(stamp(plane, "/gauge/a")) == (START + 3.0) * 1000
