"""JSON has no NaN or infinity: they are written as ``null`` wherever JSON goes out,
while the lane keeps the float (README, "The service: records in, insights out")."""

from __future__ import annotations

import math

import orjson

from swimstream.streams.sinks import encode_value
from tests.web.harness import Served


async def test_a_lane_holding_nan_and_infinity_reads_null_and_keeps_the_floats(
    served: Served,
) -> None:
    status = {"temp": math.nan, "tower": "a", "ts": 1, "peak": -math.inf}
    await served.plane.command("/device/1", "status", status)
    assert await served.get_json("/device/1?lane=status") == (
        200,
        {"temp": None, "tower": "a", "ts": 1, "peak": None},
    )
    kept = served.plane.get("/device/1", "status")
    assert math.isnan(kept["temp"]) and kept["peak"] == -math.inf


def test_a_sink_writes_nan_and_infinity_as_null() -> None:
    value = {"temp": math.nan, "peak": math.inf}
    assert orjson.loads(encode_value(value, "json")) == {"temp": None, "peak": None}
    assert encode_value(math.nan, "raw") == b"nan"  # raw writes a number's text
