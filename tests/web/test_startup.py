"""The web port while the instance starts: alive, not ready, saying what it waits for."""

from __future__ import annotations

import asyncio

import aiohttp

from swimstream.metrics import MetricsRegistry
from swimstream.web.startup import StartingServer


async def test_probes_answer_while_starting_and_the_port_is_free_for_the_server_after() -> None:
    registry = MetricsRegistry()
    registry.counter("records_in", "Records read.").inc(3)
    starting = StartingServer(("127.0.0.1", 0), registry)
    await starting.start()
    url = f"http://127.0.0.1:{starting.port}"
    try:
        starting.step = "waiting for the broker (12 s so far): refused"
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/healthz") as response:
                assert response.status == 200  # alive: an orchestrator must not restart it
                assert await response.json() == {
                    "ok": True,
                    "checks": {"start": "waiting for the broker (12 s so far): refused"},
                }
            starting.step = "restoring state from the changelog"
            async with http.get(url + "/readyz") as response:
                assert response.status == 503
                body = await response.json()
                assert body["checks"] == {"start": "restoring state from the changelog"}
            async with http.get(url + "/metrics") as response:
                assert response.status == 200  # a scrape during a long start is no gap
                assert "swimstream_records_in_total 3" in await response.text()
            for method, path in (("GET", "/device/7?lane=status"), ("POST", "/device/7")):
                async with http.request(method, url + path) as response:
                    assert response.status == 503
                    assert response.headers["Retry-After"] == "1"
                    assert "starting: restoring state" in (await response.json())["error"]
    finally:
        await starting.stop()
    again = StartingServer(("127.0.0.1", starting.port), registry)  # the full server binds it next
    await again.start()
    await again.stop()


async def test_the_port_is_free_for_the_full_server_while_probes_in_flight_finish() -> None:
    """(The full server bound the port only once every kept-alive connection of the
    probes had closed: about a second when a client, as probes do, kept one open.)"""
    starting = StartingServer(("127.0.0.1", 0), MetricsRegistry())
    await starting.start()
    async with aiohttp.ClientSession() as http:  # keeps its connection alive
        async with http.get(f"http://127.0.0.1:{starting.port}/healthz") as response:
            assert response.status == 200
        await starting.release_port()
        # The kept-alive connection still answers (the whole server's shutdown would
        # have waited for it, then closed it) while the port is free for a new server.
        async with http.get(f"http://127.0.0.1:{starting.port}/healthz") as response:
            assert response.status == 200
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", starting.port)
        server.close()
        await starting.stop()


async def test_a_wait_is_counted_at_each_probe() -> None:
    now = [100.0]
    starting = StartingServer(("127.0.0.1", 0), MetricsRegistry(), clock=lambda: now[0])
    starting.set_waiting("waiting for the broker", 93.0, "refused")
    assert starting.step == "waiting for the broker (7 s so far): refused"
    now[0] = 107.0
    assert starting.step == "waiting for the broker (14 s so far): refused"
    starting.step = "checking the topics"
    assert starting.step == "checking the topics"
