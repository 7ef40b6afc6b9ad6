"""The towers example: aggregates over a changing graph equal a direct computation."""

import random
from typing import Any

from examples.towers import HOT_TEMPERATURE, ROUTES
from swimstream.testing import open_plane


def make_readings(count: int, devices: int, towers: int, seed: int) -> list[dict[str, Any]]:
    """Readings where each device mostly stays on its tower and sometimes moves."""
    rng = random.Random(seed)
    home = {d: rng.randrange(towers) for d in range(devices)}
    readings = []
    for ts in range(count):
        device = rng.randrange(devices)
        if rng.random() < 0.1:
            home[device] = rng.randrange(towers)
        temp = round(rng.uniform(40.0, 100.0), 1)
        readings.append(
            {"device": str(device), "tower": f"t{home[device]}", "temp": temp, "ts": ts}
        )
    return readings


def expected_views(readings: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    latest = {r["device"]: r for r in readings}
    towers: dict[str, list[float]] = {r["tower"]: [] for r in readings}  # every tower ever attached
    for reading in latest.values():
        towers[reading["tower"]].append(reading["temp"])
    summaries = {
        tower: {
            "devices": len(temps),
            "hot": sum(1 for t in temps if t > HOT_TEMPERATURE),
            "max_temp": max(temps, default=None),
        }
        for tower, temps in towers.items()
    }
    totals = {
        "towers": len(summaries),
        "devices": len(latest),
        "hot": sum(1 for r in latest.values() if r["temp"] > HOT_TEMPERATURE),
    }
    return summaries, totals


async def test_every_aggregate_equals_a_direct_computation_over_the_same_events() -> None:
    readings = make_readings(count=6000, devices=400, towers=15, seed=7)
    async with open_plane(ROUTES) as plane:
        for reading in readings:
            await plane.command(f"/device/{reading['device']}", "reading", reading)
        await plane.settle()

        summaries, totals = expected_views(readings)
        for tower, summary in summaries.items():
            assert plane.get(f"/tower/{tower}", "summary") == summary, tower
        assert plane.get("/world", "totals") == totals

        for device, reading in {r["device"]: r for r in readings}.items():
            status = plane.get(f"/device/{device}", "status")
            assert status == {
                "temp": reading["temp"],
                "tower": reading["tower"],
                "ts": reading["ts"],
            }
        history = plane.get("/device/0", "history")
        mine = [r for r in readings if r["device"] == "0"]
        assert history == {r["ts"]: r["temp"] for r in mine[-50:]}
        assert plane.get("/device/0", "readings") == len(mine)

        alerts = [i for i in plane.insights if i.topic == "alerts"]
        assert len(alerts) == sum(1 for r in readings if r["temp"] > HOT_TEMPERATURE)
        assert plane.statistics().callback_failures == 0


async def test_a_device_that_moves_leaves_the_old_tower_and_joins_the_new_one() -> None:
    async with open_plane(ROUTES) as plane:
        await plane.command("/device/d1", "reading", {"tower": "north", "temp": 95, "ts": 1})
        await plane.command("/device/d2", "reading", {"tower": "north", "temp": 50, "ts": 2})
        await plane.settle()
        assert set(plane.get("/tower/north", "devices")) == {"/device/d1", "/device/d2"}
        assert plane.get("/tower/north", "summary")["hot"] == 1

        await plane.command("/device/d1", "reading", {"tower": "south", "temp": 96, "ts": 3})
        await plane.settle()
        assert set(plane.get("/tower/north", "devices")) == {"/device/d2"}
        assert plane.get("/tower/north", "summary") == {"devices": 1, "hot": 0, "max_temp": 50.0}
        assert plane.get("/tower/south", "summary") == {"devices": 1, "hot": 1, "max_temp": 96.0}
        north_links = plane.agent("/tower/north").downlinks.values()
        assert [d.node_uri for d in north_links] == ["/device/d2"]
        assert plane.get("/world", "totals") == {"towers": 2, "devices": 2, "hot": 1}


async def test_aggregates_stay_exact_when_towers_are_passivated_and_loaded_again() -> None:
    """A tower loaded again rebuilds its hottest-device heap from its restored join."""
    readings = make_readings(count=3000, devices=200, towers=8, seed=11)
    towers = sorted({r["tower"] for r in readings})
    unloaded = 0
    async with open_plane(ROUTES) as plane:
        for n, reading in enumerate(readings):
            await plane.command(f"/device/{reading['device']}", "reading", reading)
            if n % 100 == 99:  # now and then, every tower leaves memory
                await plane.settle()
                unloaded += sum(plane.passivate(f"/tower/{tower}") for tower in towers)
        await plane.settle()
        assert unloaded >= 8 * 25
        summaries, totals = expected_views(readings)
        for tower, summary in summaries.items():
            assert plane.get(f"/tower/{tower}", "summary") == summary, tower
        assert plane.get("/world", "totals") == totals


async def test_a_tower_summary_changes_only_when_a_count_or_the_hottest_device_does() -> None:
    """Readings that move no count and not the hottest temperature leave the summary be,
    so its lane sink and the world's join see changes, not one record per reading."""
    async with open_plane(ROUTES) as plane:
        changes: list[Any] = []
        plane.observe(lambda lane, op: changes.append(op.value), route="/tower/:id", lane="summary")
        await plane.command("/device/a", "reading", {"tower": "n", "temp": 80.0, "ts": 1})
        await plane.command("/device/b", "reading", {"tower": "n", "temp": 60.0, "ts": 2})
        await plane.settle()
        assert changes[-1] == {"devices": 2, "hot": 0, "max_temp": 80.0}
        seen = len(changes)
        for ts, temp in enumerate([61.0, 70.0, 55.0, 79.5], start=3):  # b, never the hottest
            await plane.command("/device/b", "reading", {"tower": "n", "temp": temp, "ts": ts})
        await plane.settle()
        assert len(changes) == seen
        await plane.command("/device/b", "reading", {"tower": "n", "temp": 95.0, "ts": 9})
        await plane.settle()
        assert changes[seen:] == [{"devices": 2, "hot": 1, "max_temp": 95.0}]
        assert plane.get("/world", "totals") == {"towers": 1, "devices": 2, "hot": 1}
