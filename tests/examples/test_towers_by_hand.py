"""The by-hand towers loop (the benches' floor) gives the towers app's results.

The pipeline and instructions benches compare the app's cost with this loop's; the
comparison only means something if both do the same work, so the loop's every view
must equal the app's on the same readings, devices moving between towers included.
"""

from collections import Counter

import orjson

from bench.towers_by_hand import TowersByHand
from examples.towers import ROUTES
from swimstream.testing import open_plane
from tests.examples.test_towers import make_readings


async def test_the_loop_by_hand_ends_with_the_apps_views_alerts_and_summaries() -> None:
    readings = make_readings(count=4000, devices=60, towers=8, seed=5)  # ~67 a device
    by_hand = TowersByHand()
    for reading in readings:
        by_hand.handle(reading["device"].encode(), orjson.dumps(reading))

    async with open_plane(ROUTES) as plane:
        summaries: list[tuple[str, object]] = []
        plane.observe(
            lambda lane, op: summaries.append((lane._agent.params["id"], op.value)),
            route="/tower/:id",
            lane="summary",
        )
        for reading in readings:
            await plane.command(f"/device/{reading['device']}", "reading", reading)
            await plane.settle()  # one reading at a time: summaries change in one order
        assert plane.get("/world", "totals") == by_hand.totals
        for tower_id, tower in by_hand.towers.items():
            assert plane.get(f"/tower/{tower_id}", "summary") == tower.summary, tower_id
        for device_id, device in by_hand.devices.items():
            uri = f"/device/{device_id}"
            assert plane.get(uri, "status") == device.status
            assert plane.get(uri, "history") == device.history
            assert plane.get(uri, "readings") == device.readings
        alerts = [i.value for i in plane.insights if i.topic == "alerts"]
        assert alerts == by_hand.alerts
        assert Counter(map(repr, summaries)) == Counter(map(repr, by_hand.summaries))
        assert len(by_hand.summaries) > len(by_hand.towers)  # summaries did change
