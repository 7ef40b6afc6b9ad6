"""The latency bench pairs each alert with the reading that caused it, and nothing else."""

from __future__ import annotations

import orjson

from bench.latency_bench import Matcher, alert_key, reading_key


def test_an_alert_is_timed_from_its_own_reading_and_a_stray_one_is_counted_apart() -> None:
    matcher = Matcher()
    matcher.note_sent(("7", 90.500001), 10.0)
    matcher.note_sent(("7", 90.500002), 10.5)
    alert = orjson.dumps({"device": "7", "temp": 90.500002, "tower": "t0"})
    matcher.note_seen(alert_key(alert), 10.75)
    matcher.note_seen(("8", 95.0), 11.0)  # no reading of device 8 was hot
    matcher.note_seen(alert_key(alert), 11.5)  # a repeat: its reading is paired already
    assert matcher.latencies == [0.25]
    assert matcher.unmatched == 2
    assert matcher.sent == {("7", 90.500001): 10.0}  # still on its way


def test_only_hot_readings_are_waited_for_on_the_floor_row() -> None:
    hot = orjson.dumps({"device": "3", "tower": "t0", "temp": 90.5, "ts": 1})
    cool = orjson.dumps({"device": "3", "tower": "t0", "temp": 60.0, "ts": 2})
    assert reading_key(hot) == ("3", 90.5)
    assert reading_key(cool) is None
