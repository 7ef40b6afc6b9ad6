"""Lane streams over Server-Sent Events: sync, ordered events, coalescing, clean ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.waiting import wait_until
from tests.web.harness import EventReader, Served, ServeFactory, Valve, reading

STREAM_HEADERS = {"Accept": "text/event-stream"}


@contextlib.asynccontextmanager
async def stream(served: Served, path: str) -> AsyncIterator[EventReader]:
    """An open SSE stream of ``path`` whose ``state`` and ``synced`` were read."""
    async with served.client.get(served.url(path), headers=STREAM_HEADERS) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        yield EventReader(response)


async def test_a_stream_sends_the_state_then_synced_then_each_change_in_order(
    served: Served,
) -> None:
    await served.plane.command("/device/1", "status", {"temp": 10.0})
    async with stream(served, "/device/1?lane=status") as events:
        assert await events.next() == ("state", {"temp": 10.0})
        assert await events.next() == (
            "synced",
            {"node": "/device/1", "lane": "status", "kind": "value"},
        )
        for ts, temp in [(1, 20.0), (2, 30.0), (3, 40.0)]:
            await served.post_json("/device/1?lane=reading", reading(temp, "a", ts))
            assert await events.next() == ("set", {"temp": temp, "tower": "a", "ts": ts})


async def test_map_streams_send_deltas_with_typed_keys(served: Served) -> None:
    await served.post_json("/device/2?lane=history", {"update": 1, "value": 1.5})
    async with served.client.get(served.url("/device/2?lane=history&stream=1")) as response:
        events = EventReader(response)
        assert await events.next() == ("state", {"1": 1.5})
        assert (await events.next())[0] == "synced"
        await served.post_json("/device/2?lane=history", {"update": 2, "value": 2.5})
        assert await events.next() == ("update", {"update": 2, "value": 2.5})
        await served.post_json("/device/2?lane=history", {"remove": 1})
        assert await events.next() == ("remove", {"remove": 1})
        await served.post_json("/device/2?lane=history", {"clear": True})
        assert await events.next() == ("clear", {"clear": True})


async def test_counter_and_join_streams_follow_their_lanes(served: Served) -> None:
    async with (
        stream(served, "/device/3?lane=readings") as counts,
        stream(served, "/tower/b?lane=devices") as joined,
    ):
        assert await counts.next() == ("state", 0)
        assert await joined.next() == ("state", {})
        await counts.next(), await joined.next()  # synced
        for ts in (1, 2, 3):
            await served.post_json("/device/3?lane=reading", reading(50.0 + ts, "b", ts))
            assert await counts.next() == ("set", ts)
            assert await joined.next() == (
                "update",
                {"update": "/device/3", "value": {"temp": 50.0 + ts, "tower": "b", "ts": ts}},
            )


async def test_a_stalled_client_gets_a_few_coalesced_events_ending_in_the_latest_state(
    served: Served,
) -> None:
    async with stream(served, "/device/4?lane=status") as events:
        await events.next(), await events.next()  # state, synced
        started = time.monotonic()
        for n in range(10_000):  # the client reads nothing meanwhile
            await served.plane.command("/device/4", "status", {"n": n, "pad": "x" * 1000})
            if n % 100 == 99:
                await asyncio.sleep(0.005)  # bursts over half a second: the stream may flush
        await served.plane.settle()
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.3)  # the last flush

        received: list[dict[str, Any]] = []
        while not received or received[-1]["n"] != 9_999:
            name, value = await events.next()
            assert name == "set"
            received.append(value)
    numbers = [value["n"] for value in received]
    assert numbers == sorted(numbers)
    # at most one flush per stream_interval (0.05 s) while the updates ran, plus the last
    assert len(received) <= elapsed / 0.05 + 3, (len(received), elapsed)
    assert len(received) < 100


async def test_a_client_that_leaves_is_unlinked(served: Served) -> None:
    baseline = served.plane.statistics().links
    async with stream(served, "/device/5?lane=status") as events:
        await events.next(), await events.next()
        assert served.plane.statistics().links == baseline + 1
        assert served.registry.render().count("swimstream_web_streams_open 1") == 1
    await wait_until(lambda: served.plane.statistics().links == baseline)
    await wait_until(lambda: "swimstream_web_streams_open 0" in served.registry.render())
    await served.post_json("/device/5?lane=status", {"after": True})  # nobody to deliver to


async def test_streams_beyond_max_streams_are_503_with_retry_after_until_one_closes(
    serve: ServeFactory,
) -> None:
    """(There was no cap: each stream holds a buffer and costs the agent it watches a
    delivery per change, and a client could open as many as it liked.)"""
    async with serve(max_streams=2) as served, stream(served, "/device/8?lane=status") as first:
        assert await first.next() == ("state", None)
        await first.next()  # synced
        async with stream(served, "/device/9?lane=history"):
            url = served.url("/device/8?lane=status")
            async with served.client.get(url, headers=STREAM_HEADERS) as refused:
                assert refused.status == 503 and refused.headers["Retry-After"] == "5"
                assert await refused.json() == {
                    "error": "too many lane streams are open (2, web.max_streams); retry later",
                    "max_streams": 2,
                }
            assert await served.get_json("/device/8?lane=status") == (200, None)  # no stream
            metrics = served.registry.render()
            assert "swimstream_web_streams_open 2\n" in metrics
            assert "swimstream_web_streams_refused_total 1\n" in metrics
        # the second stream's client left: its slot is free once it unlinked
        await wait_until(lambda: "swimstream_web_streams_open 1\n" in served.registry.render())
        async with stream(served, "/device/8?lane=status") as again:
            assert await again.next() == ("state", None)
        await served.post_json("/device/8?lane=status", 3)
        assert await first.next() == ("set", 3)  # the first one streams on


async def test_an_idle_stream_sends_heartbeats(serve: ServeFactory) -> None:
    async with (
        serve(heartbeat_interval=0.05) as served,
        stream(served, "/device/6?lane=status") as events,
    ):
        await events.next(), await events.next()
        await asyncio.sleep(0.2)
        await served.post_json("/device/6?lane=status", 1)
        assert await events.next() == ("set", 1)
        assert events.comments and all(c == ": heartbeat" for c in events.comments)


async def test_stopping_the_server_ends_its_streams_and_leaves_no_task(
    serve: ServeFactory,
) -> None:
    before = asyncio.all_tasks()
    async with serve() as served:
        plane_tasks = asyncio.all_tasks() - before
        response = await served.client.get(
            served.url("/device/7?lane=status"), headers=STREAM_HEADERS
        )
        events = EventReader(response)
        await events.next(), await events.next()
        links = served.plane.statistics().links
        await served.server.__aexit__(None, None, None)  # stop the server, keep the plane
        try:
            await events.next()
            raise AssertionError("the stream should have ended")
        except (EOFError, aiohttp.ClientPayloadError):
            pass
        response.release()
        assert served.plane.statistics().links == links - 1
        leftover = asyncio.all_tasks() - before - plane_tasks
        assert not leftover, leftover


async def test_head_of_a_stream_is_headers_only(served: Served) -> None:
    """A HEAD asking for the stream got the stream's body, endlessly: the next request
    pipelined on that connection was never answered."""
    served.plane.agent("/device/1")
    port = served.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"HEAD /device/1?lane=status&stream=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), 5)  # until the server closes
    finally:
        writer.close()
    assert answer.count(b"HTTP/1.1 200") == 2, answer
    assert b"event:" not in answer and b'"ok"' in answer
    assert "swimstream_web_streams_open 0\n" in served.registry.render()  # (value() reads counters)


async def test_a_client_gone_before_its_stream_synced_ends_it_quietly(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """The sync waits for the agent's turn; a client that leaves meanwhile must free
    its stream's slot and link, with nothing logged as a failure of the web port."""
    served.plane.submit("/valve/1", "hold", None)  # the valve's turn holds its mailbox
    try:
        await wait_until(lambda: Valve.entered == 1)
        links = served.plane.statistics().links
        url = served.url("/")
        _, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(
            b"GET /valve/1?lane=passed HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        )
        await writer.drain()
        await wait_until(lambda: "swimstream_web_streams_open 1\n" in served.registry.render())
        writer.close()  # the client gives up before anything was sent
        await writer.wait_closed()
        await asyncio.sleep(0.1)
    finally:
        Valve.opened.set()  # the sync happens now, for nobody
    await wait_until(lambda: "swimstream_web_streams_open 0\n" in served.registry.render())
    await served.plane.settle()  # the valve's queued turn, with the link, has run
    assert served.plane.statistics().links == links  # the gone client's link was not made
    assert not [r for r in caplog.records if "web port failed" in r.getMessage()]
    async with stream(served, "/valve/1?lane=passed") as events:  # and it serves on
        assert await events.next() == ("state", 1)


def nested_list(depth: int) -> list[Any]:
    """``[[[...]]]`` ``depth`` levels deep: orjson reads 1,024 levels but writes 254."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


async def read_until(reader: asyncio.StreamReader, marker: bytes, received: bytes = b"") -> bytes:
    """``received`` and then the raw bytes the server sends until ``marker`` arrives
    among them; AssertionError showing every byte read when it does not within 5 s."""
    start = len(received)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while marker not in received[start:]:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
    assert marker in received[start:], (marker, received)
    return received


@pytest.mark.parametrize(
    ("unencodable", "reason"),
    [
        pytest.param(nested_list(300), b"Recursion limit reached", id="a list nested 300 deep"),
    ],
)
async def test_a_change_that_is_not_json_is_an_error_event_and_the_stream_goes_on(
    served: Served, caplog: pytest.LogCaptureFixture, unencodable: Any, reason: bytes
) -> None:
    """A lane may hold what JSON cannot write: 1,000 levels are stored, orjson writes 254.
    (Its encoding error escaped the stream after the response had started, and the
    error middleware wrote a second response, ``HTTP/1.1 500``, into the open body.)"""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
    try:
        writer.write(
            b"GET /device/11?lane=status HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        )
        received = await read_until(reader, b"event: synced")
        for _ in range(2):  # (held in memory, the lane never encodes its value)
            await served.plane.command("/device/11", "status", unencodable)
            received = await read_until(reader, b"event: error", received)
        await served.post_json("/device/11?lane=status", {"temp": 1.0})
        received = await read_until(reader, b'event: set\ndata: {"temp":1.0}', received)
    finally:
        writer.close()
    assert received.count(b"HTTP/1.1 ") == 1, received
    assert received.count(b"event: error\ndata: ") == 2
    error = b"a change of lane 'status' of /device/11 is not JSON: " + reason
    assert received.count(b'event: error\ndata: {"error":"' + error + b'"}\n\n') == 2, received
    logged = [r for r in caplog.records if "is not JSON" in r.getMessage()]
    assert len(logged) == 1, logged  # once per stream, not per change
    assert await served.get_json("/device/11?lane=status") == (200, {"temp": 1.0})


async def test_a_client_that_stops_reading_is_dropped_and_its_stream_slot_freed(
    serve: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """(A write the client did not take waited forever, and the heartbeat, which finds
    clients gone, never came: every such client held a slot of web.max_streams.)"""
    caplog.set_level(logging.INFO, "swimstream.web")
    loop = asyncio.get_running_loop()
    async with serve(heartbeat_interval=0.1) as served:
        baseline = served.plane.statistics().links
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connecting
        client.setblocking(False)
        try:
            await loop.sock_connect(client, ("127.0.0.1", served.server.port))
            await loop.sock_sendall(
                client,
                b"GET /device/12?lane=status HTTP/1.1\r\nHost: x\r\n"
                b"Accept: text/event-stream\r\n\r\n",
            )  # and it never reads
            await wait_until(lambda: "swimstream_web_streams_open 1\n" in served.registry.render())
            pad = "x" * 1_000_000
            deadline = loop.time() + 8
            for n in range(1_000_000):
                if "swimstream_web_streams_open 0\n" in served.registry.render():
                    break
                assert loop.time() < deadline, "the stream of a client that reads nothing is open"
                await served.plane.command("/device/12", "status", {"n": n, "pad": pad})
                await asyncio.sleep(0.02)
        finally:
            client.close()
        await wait_until(lambda: served.plane.statistics().links == baseline)
        dropped = [r for r in caplog.records if "stopped reading" in r.getMessage()]
        assert len(dropped) == 1, dropped
        await served.post_json("/device/12?lane=status", {"after": True})
        async with stream(served, "/device/12?lane=status") as events:  # it serves on
            assert await events.next() == ("state", {"after": True})


async def test_a_stream_of_an_agent_a_hand_over_forgets_ends_and_its_reconnect_syncs_afresh(
    served: Served,
) -> None:
    """A hand-over drops an agent from memory (its shard left, or is restored from the
    changelog): the stream showed a state that may no longer be the agent's, and used
    to stay open for good, never re-synced, with keys the agent no longer holds."""
    await served.post_json("/device/6?lane=history", {"update": 1, "value": 50.0})
    async with stream(served, "/device/6?lane=history") as events:
        assert await events.next() == ("state", {"1": 50.0})
        assert (await events.next())[0] == "synced"
        # What a hand-over does once the restored state is in the store.
        assert served.plane.forget_agents(lambda node: node == "/device/6") == 1
        with pytest.raises(EOFError):
            await events.next()
    await wait_until(lambda: "swimstream_web_streams_open 0" in served.registry.render())
    async with stream(served, "/device/6?lane=history") as events:
        assert await events.next() == ("state", {})  # the agent as its store has it
