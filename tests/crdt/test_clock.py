import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimstream.crdt import (
    HybridLogicalClock,
    LWWMap,
    LWWRegister,
    timestamp_logical,
    timestamp_millis,
)
from swimstream.crdt import clock as clock_module
from swimstream.crdt import lww_map as lww_map_module
from swimstream.crdt import register as register_module
from tests.crdt.replication import FakeWall


def test_now_follows_the_wall_clock() -> None:
    wall = FakeWall(1_000)
    clock = HybridLogicalClock(wall)
    first = clock.now()
    assert timestamp_millis(first) == 1_000
    assert timestamp_logical(first) == 0
    wall.millis = 1_005
    assert timestamp_millis(clock.now()) == 1_005


def test_never_goes_backwards_when_the_wall_does() -> None:
    wall = FakeWall(5_000)
    clock = HybridLogicalClock(wall)
    before = clock.now()
    wall.millis = 4_000  # NTP stepped the clock back
    after = [clock.now() for _ in range(3)]
    assert before < after[0] < after[1] < after[2]
    assert timestamp_millis(after[-1]) == 5_000
    assert timestamp_logical(after[-1]) == 3


def test_observe_orders_later_local_events_after_remote_ones() -> None:
    clock = HybridLogicalClock(FakeWall(100))
    remote = HybridLogicalClock(FakeWall(900)).now()  # a peer whose clock runs ahead
    clock.observe(remote)
    assert clock.now() > remote


def test_logical_overflow_carries_into_the_millis_and_stays_monotonic() -> None:
    clock = HybridLogicalClock(FakeWall(7))
    stamps = [clock.now() for _ in range(70_000)]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert timestamp_millis(stamps[-1]) == 8


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 2**30), st.booleans()), max_size=60))
def test_strictly_increasing_under_any_wall_and_remote_sequence(
    script: list[tuple[int, int, bool]],
) -> None:
    wall = FakeWall()
    clock = HybridLogicalClock(wall)
    previous = -1
    for millis, remote, is_observe in script:
        wall.millis = millis
        if is_observe:
            clock.observe(remote)
            assert clock.last >= remote
            stamp = clock.now()
            assert stamp > remote
        else:
            stamp = clock.now()
        assert stamp > previous
        previous = stamp


@given(
    st.lists(
        st.tuples(st.integers(-3_000_000, 3_000_000), st.integers(0, 2**24), st.booleans()),
        max_size=60,
    )
)
def test_the_system_clock_gives_what_a_wall_of_its_millis_gives(
    script: list[tuple[int, int, bool]],
) -> None:
    """The system clock's readings within one millisecond skip the conversion (see
    ``_millis_end``): every timestamp is still the one a wall of the same milliseconds
    gives, whether its readings go forward, stay or step back, millisecond boundaries
    (where a float's rounding could tell another millisecond) included."""
    ns = 1_700_000_000_000_000_000
    wall = FakeWall()
    reference = HybridLogicalClock(wall)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clock_module, "time", lambda: ns / 1e9)
        system = HybridLogicalClock()
        for step, remote, is_observe in script:
            ns += step
            wall.millis = int(ns / 1e9 * 1000.0)  # (what ``wall_millis`` reads)
            if is_observe:  # (observe reads the wall through ``wall_millis``)
                remote += reference.last
                assert system.observe(remote) == reference.observe(remote)
            assert system.now() == reference.now()


@given(st.integers(0, 10**6), st.lists(st.integers(-400, 400), min_size=1, max_size=30))
def test_the_system_clock_agrees_with_its_wall_at_millisecond_boundaries(
    millis: int, offsets: list[int]
) -> None:
    """Readings within a few hundred nanoseconds of a millisecond's end, where the float
    ``time.time`` returns holds the boundary only to a quarter of a microsecond."""
    boundary = 1_700_000_000_000_000_000 + millis * 1_000_000
    wall = FakeWall()
    reference = HybridLogicalClock(wall)
    with pytest.MonkeyPatch.context() as patch:
        system = HybridLogicalClock()
        for offset in offsets:
            seconds = (boundary + offset) / 1e9
            patch.setattr(clock_module, "time", lambda seconds=seconds: seconds)
            wall.millis = int(seconds * 1000.0)
            assert system.now() == reference.now()


WRITES = st.sampled_from(["put", "put_unseen", "set", "set_unseen", "now"])


@given(st.lists(st.tuples(st.integers(-3_000_000, 3_000_000), WRITES), max_size=60))
def test_every_write_stamps_as_the_clock_would(script: list[tuple[int, str]]) -> None:
    """The lanes' writes take the clock's usual timestamp inline (see ``now``): their
    stamps are the ones a wall of the same milliseconds gives, readings that go forward,
    stay, step back or cross a millisecond's end included."""
    ns = 1_700_000_000_000_000_000
    wall = FakeWall()
    reference = HybridLogicalClock(wall)
    with pytest.MonkeyPatch.context() as patch:
        for module in (clock_module, lww_map_module, register_module):
            patch.setattr(module, "time", lambda: ns / 1e9)
        system = HybridLogicalClock()
        entries, register = LWWMap("r", system), LWWRegister("r", clock=system)
        for step, write in script:
            ns += step
            wall.millis = int(ns / 1e9 * 1000.0)  # (what ``wall_millis`` reads)
            expected = reference.now()
            _check_write(write, expected, entries, register, system)


def _check_write(
    write: str,
    expected: int,
    entries: LWWMap,
    register: LWWRegister,
    clock: HybridLogicalClock,
) -> None:
    """Make the write ``write`` names and check it took the timestamp ``expected``."""
    if write == "put":
        assert entries.put("k", 1).stamp[0] == expected
    elif write == "put_unseen":
        entries.put_unseen("k", 1)
        assert entries.stamp_of("k") == (expected, "r")
    elif write == "set":
        assert register.set(1).stamp[0] == expected
    elif write == "set_unseen":
        register.set_unseen(1)
        assert register.stamp == (expected, "r")
    else:
        assert clock.now() == expected


TICKED_STEPS = st.sampled_from(["now", "tick", "observe", "wall"])


@given(st.lists(st.tuples(TICKED_STEPS, st.integers(0, 2**30)), max_size=80))
def test_a_ticked_clock_reads_the_wall_at_its_ticks_only_and_stays_monotonic(
    script: list[tuple[str, int]],
) -> None:
    """Between ticks a ticked clock's timestamps follow one another whatever the wall
    does; a tick brings them up to the wall (never back); observed ones stay behind."""
    wall = FakeWall(5)
    clock = HybridLogicalClock(wall, ticked=True)
    assert clock.now() == 5 << 16  # (read once as it is made)
    previous = clock.last
    for step, number in script:
        if step == "wall":
            wall.millis = number % 1_000  # (forward, back or still)
        elif step == "tick":
            clock.tick()
            assert clock.now() >= max(previous + 1, wall.millis << 16)
        elif step == "observe":
            clock.observe(number)
            assert clock.now() > number
        else:
            assert clock.now() == previous + 1  # (no reading of the wall)
        assert clock.last > previous or step in ("wall", "tick")
        previous = clock.last


TICKED_WRITES = st.sampled_from(["put", "put_unseen", "set", "set_unseen", "now", "tick"])


@given(st.lists(st.tuples(st.integers(0, 50), TICKED_WRITES), max_size=60))
def test_every_write_on_a_ticked_clock_stamps_as_its_now_would_without_the_wall(
    script: list[tuple[int, str]],
) -> None:
    """The lanes' writes take a ticked clock's timestamp inline, as they take the system
    clock's (see ``now``), and read no wall (``time`` fails if they do)."""
    wall, reference_wall = FakeWall(1), FakeWall(1)
    ticked, reference = (HybridLogicalClock(w, ticked=True) for w in (wall, reference_wall))

    def no_wall() -> float:
        raise AssertionError("a ticked clock's write read the wall")

    with pytest.MonkeyPatch.context() as patch:
        for module in (clock_module, lww_map_module, register_module):
            patch.setattr(module, "time", no_wall)
        entries, register = LWWMap("r", ticked), LWWRegister("r", clock=ticked)
        for millis, write in script:
            wall.millis = reference_wall.millis = millis
            if write == "tick":
                ticked.tick()
                reference.tick()
                continue
            expected = reference.now()
            _check_write(write, expected, entries, register, ticked)
