"""The one rate limiter every repeated log line goes through: the first line always
goes out, then at most one per interval, and the count of those held back is exact."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from swimstream.ratelimit import LOG_INTERVAL, RateLimit, more_since


class Clock:
    """Seconds that a test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_first_line_goes_out_whatever_the_clock_reads() -> None:
    """A clock at 0 (a fake one, or a host up for less than an interval) must not make
    the first line look as if one went out a moment ago."""
    for now in (0.0, 3.0, -100.0, 1e9):
        assert RateLimit[None](clock=Clock(now)).admit() == 0


def test_lines_inside_the_interval_are_held_back_and_counted() -> None:
    clock = Clock(50.0)
    limit = RateLimit[None](LOG_INTERVAL, clock)
    assert limit.admit() == 0
    for _ in range(4):
        clock.now += 1.0
        assert limit.admit() is None
    assert limit.held == 4
    clock.now = 50.0 + LOG_INTERVAL  # (the interval is counted from the last line)
    assert limit.admit() == 4
    assert limit.held == 0
    clock.now += LOG_INTERVAL - 0.001
    assert limit.admit() is None
    clock.now += 0.001
    assert limit.admit() == 1


def test_the_interval_is_the_limits_own() -> None:
    clock = Clock(0.0)
    limit = RateLimit[None](60.0, clock)
    assert limit.admit() == 0
    clock.now = 59.0
    assert limit.admit() is None
    clock.now = 60.0
    assert limit.admit() == 1


def test_the_last_event_held_back_is_given_once_its_interval_is_over() -> None:
    clock = Clock(0.0)
    limit = RateLimit[str](10.0, clock)
    assert limit.take_held() is None  # (nothing held)
    assert limit.admit("first") == 0
    assert limit.admit("second") is None
    assert limit.admit("third") is None
    assert limit.take_held() is None  # (not time yet)
    clock.now = 10.0
    assert limit.take_held() == ("third", 1)
    assert limit.take_held() is None  # (given once)
    assert limit.admit("fourth") is None  # (the held line counts as a line logged)


def test_everything_gives_the_held_event_before_its_interval_is_over() -> None:
    clock = Clock(0.0)
    limit = RateLimit[str](10.0, clock)
    limit.admit("first")
    limit.admit("second")
    assert limit.take_held(everything=True) == ("second", 0)
    assert limit.take_held(everything=True) is None


def test_a_line_logged_forgets_the_event_held_back() -> None:
    """Held errors keep their tracebacks' frames alive: a line that went out since
    reported them in its count, and they are not given again."""
    clock = Clock(0.0)
    limit = RateLimit[str](10.0, clock)
    limit.admit("first")
    limit.admit("held")
    clock.now = 10.0
    assert limit.admit("next") == 1
    assert limit.take_held(everything=True) is None


def test_the_end_of_a_line_says_how_many_were_held_back() -> None:
    assert more_since(0) == ""
    assert more_since(3) == " (3 more since the last report)"
    assert more_since(1, " at this site") == " (1 more at this site since the last report)"


@given(
    st.lists(st.floats(min_value=0.0, max_value=30.0), max_size=60),
    st.floats(min_value=0.5, max_value=20.0),
)
def test_every_event_is_logged_or_counted_once_and_lines_keep_their_interval(
    gaps: list[float], interval: float
) -> None:
    clock = Clock(1_000.0)
    limit = RateLimit[int](interval, clock)
    told, logged_at = 0, []
    for event, gap in enumerate(gaps):
        clock.now += gap
        more = limit.admit(event)
        if more is not None:
            told += 1 + more
            logged_at.append(clock.now)
    held = limit.take_held(everything=True)
    if held is not None:
        told += 1 + held[1]
    assert told == len(gaps) and limit.held == 0
    assert all(b - a >= interval for a, b in pairwise(logged_at))
