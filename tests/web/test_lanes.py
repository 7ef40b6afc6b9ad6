"""Lanes over HTTP: GET a lane's state, POST a command, and every error as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from typing import Any

import orjson
import pytest

from swimstream.runtime import MemoryAgentStore
from swimstream.runtime.agent_record import StoredAgent
from tests.support.waiting import wait_until
from tests.web.harness import EventReader, Served, ServeFactory, Valve, answer_of, reading


async def test_get_answers_value_map_counter_and_join_lanes_after_commands(
    served: Served,
) -> None:
    for ts, temp in [(1, 50.0), (2, 95.5)]:
        status, body = await served.post_json("/device/1?lane=reading", reading(temp, "a", ts))
        assert (status, body) == (200, {"ok": True})
    await served.plane.settle()  # the tower's join follows the device over a link

    assert await served.get_json("/device/1?lane=status") == (
        200,
        {"temp": 95.5, "tower": "a", "ts": 2},
    )
    # map keys are ints in the lane; JSON object keys are their text
    assert await served.get_json("/device/1?lane=history") == (200, {"1": 50.0, "2": 95.5})
    assert await served.get_json("/device/1?lane=readings") == (200, 2)
    assert await served.get_json("/tower/a?lane=devices") == (
        200,
        {"/device/1": {"temp": 95.5, "tower": "a", "ts": 2}},
    )
    assert await served.get_json("/tower/a?lane=summary") == (
        200,
        {"devices": 1, "hot": 1, "max_temp": 95.5},
    )
    assert await served.get_json("/world?lane=totals") == (
        200,
        {"towers": 1, "devices": 1, "hot": 1},
    )


async def test_unknown_nodes_and_lanes_are_404s_that_name_them(served: Served) -> None:
    assert await served.get_json("/nope/1?lane=status") == (
        404,
        {"error": "no agent route matches '/nope/1'"},
    )
    status, body = await served.get_json("/device/1?lane=nope")
    assert status == 404
    assert "/device/1" in body["error"] and "'nope'" in body["error"]
    assert "status" in body["lanes"]
    status, body = await served.post_json("/device/1?lane=nope", 1)
    assert status == 404 and "'nope'" in body["error"]
    status, body = await served.post_json("/nope/1?lane=status", 1)
    assert (status, body) == (404, {"error": "no agent route matches '/nope/1'"})
    assert served.plane.active_agents == 0  # a bad address creates no agent


async def test_a_missing_lane_parameter_is_400(served: Served) -> None:
    status, body = await served.get_json("/device/1")
    assert status == 400 and "lane" in body["error"]


async def test_a_lane_parameter_given_twice_is_400_rather_than_one_of_them_served(
    served: Served,
) -> None:
    """(The first was served and the second silently ignored: a client asking for two
    lanes got one, and a POST went to whichever came first.)"""
    await served.post_json("/device/1?lane=status", 5)
    for path in ("/device/1?lane=status&lane=history", "/device/1?lane=status&lane="):
        status, body = await served.get_json(path)
        assert status == 400 and "'lane' is given 2 times" in body["error"], body
    status, body = await served.post_json("/device/1?lane=history&lane=status", 7)
    assert status == 400 and "'lane' is given 2 times" in body["error"], body
    assert await served.get_json("/device/1?lane=status") == (200, 5)


async def test_post_then_get_shows_the_command_s_effect_on_each_lane_kind(served: Served) -> None:
    assert await served.post_json("/device/7?lane=status", {"temp": 1.0}) == (200, {"ok": True})
    assert await served.get_json("/device/7?lane=status") == (200, {"temp": 1.0})

    assert await served.post_json("/device/7?lane=history", {"update": 5, "value": 2.5}) == (
        200,
        {"ok": True},
    )
    assert await served.post_json("/device/7?lane=history", {"update": 6, "value": 3.5}) == (
        200,
        {"ok": True},
    )
    await served.post_json("/device/7?lane=history", {"remove": 5})
    assert await served.get_json("/device/7?lane=history") == (200, {"6": 3.5})
    for count in (-1, 1.7, True):  # (-1 emptied the map; 1.7 and true were taken as 1)
        status, body = await served.post_json("/device/7?lane=history", {"take": count})
        assert status == 422 and "a whole number of entries, zero or more" in body["error"]
    assert await served.get_json("/device/7?lane=history") == (200, {"6": 3.5})

    await served.post_json("/device/7?lane=readings", 3)
    await served.post_json("/device/7?lane=readings", {"add": -1})
    assert await served.get_json("/device/7?lane=readings") == (200, 2)


async def test_a_raising_callback_answers_422_with_its_message_and_the_server_stays_up(
    served: Served,
) -> None:
    status, body = await served.post_json("/device/1?lane=reading", {"tower": "a", "ts": 1})
    assert status == 422
    assert body["error"] == (
        "on_command of lane 'reading' on agent /device/1 raised: KeyError: 'temp'"
    )
    status, body = await served.post_json("/device/1?lane=readings", "lots")
    assert status == 422 and body["error"].startswith(
        "command to lane 'readings' on agent /device/1 failed: ValueError: "
    )
    assert "must be an integer" in body["error"]
    status, body = await served.post_json("/device/1?lane=history", {"bogus": 1})
    assert status == 422 and body["error"] == (
        "command to lane 'history' on agent /device/1 failed: "
        "ValueError: unknown map command ['bogus'] for lane 'history'"
    )
    assert "Traceback" not in body["error"]

    assert await served.post_json("/device/1?lane=reading", reading(40.0)) == (200, {"ok": True})
    assert (await served.get_json("/device/1?lane=status"))[1]["temp"] == 40.0
    assert served.plane.statistics().callback_failures == 3


async def test_percent_encoded_node_uris_reach_the_right_agent(served: Served) -> None:
    assert await served.post_json("/device/a%2Fb?lane=reading", reading(61.0, "t%201")) == (
        200,
        {"ok": True},
    )
    agent = served.plane.agent("/device/a%2Fb")
    assert agent.params["id"] == "a/b"
    assert await served.get_json("/device/a%2Fb?lane=status") == (
        200,
        {"temp": 61.0, "tower": "t%201", "ts": 1},
    )
    # another spelling of the same id is the same agent, not a new one
    assert (await served.get_json("/device/a%2fb?lane=status"))[1]["temp"] == 61.0
    await served.post_json("/device/%61?lane=status", {"id": "a"})
    assert served.plane.get("/device/a", "status") == {"id": "a"}
    assert "/device/%61" not in served.plane.active_node_uris()


async def test_a_path_whose_escapes_are_not_utf8_is_400_naming_it(served: Served) -> None:
    """(It was 404 "no agent route matches '/device/%ff'", though the route matches:
    no value of the id can be written so.)"""
    for path in ("/device/%ff", "/device/a%FFb", "/%ff", "/device/%c3"):
        for method in ("GET", "POST"):
            async with served.client.request(
                method, served.url(f"{path}?lane=status"), data=b"1"
            ) as response:
                assert response.status == 400, (method, path, await response.text())
                error = (await response.json())["error"]
            segment = path.rpartition("/")[2]
            assert error == f"{path!r} is no node URI: {segment!r} does not percent-decode to UTF-8"
        stream = served.url(f"{path}?lane=status&stream=1")
        async with served.client.get(stream) as response:
            assert response.status == 400
    assert served.plane.active_agents == 0
    status, body = await served.get_json("/device/%C3%A9?lane=status")  # UTF-8 escapes are fine
    assert (status, body["error"].split(":")[0]) == (404, "no agent /device/%C3%A9 yet")


async def test_a_full_mailbox_answers_503_with_retry_after_until_it_drains(
    serve: ServeFactory,
) -> None:
    async def hold() -> tuple[int, Any, str | None]:
        async with served.client.post(served.url("/valve/1?lane=hold"), data=b"1") as response:
            return response.status, await response.json(), response.headers.get("Retry-After")

    async with serve(mailbox_capacity=4) as served:
        holder = asyncio.create_task(hold())
        await wait_until(lambda: Valve.entered == 1)  # its async callback holds the agent
        queued: list[asyncio.Task[tuple[int, Any, str | None]]] = []
        for _ in range(10):
            task = asyncio.create_task(hold())
            done, _ = await asyncio.wait([task], timeout=0.2)
            if done:
                break
            queued.append(task)
        status, body, retry_after = task.result()
        assert status == 503 and "mailbox of /valve/1 is full" in body["error"]
        assert retry_after == "1"
        assert len(queued) == 4  # the command that filled the mailbox was still accepted

        Valve.opened.set()
        assert [(await t)[0] for t in [holder, *queued]] == [200] * 5
        await served.plane.settle()
        assert served.plane.get("/valve/1", "passed") == 5
        assert await served.post_json("/valve/1?lane=hold", 1) == (200, {"ok": True})


async def test_a_command_still_running_after_the_timeout_is_202_queued(
    serve: ServeFactory,
) -> None:
    async with serve(command_timeout=0.2) as served:
        assert await served.post_json("/valve/2?lane=hold", None) == (202, {"queued": True})
        Valve.opened.set()
        await served.plane.settle()
        assert served.plane.get("/valve/2", "passed") == 1


async def test_other_methods_get_a_json_405(served: Served) -> None:
    async with served.client.put(served.url("/device/1?lane=status"), data=b"1") as response:
        assert response.status == 405
        assert "error" in orjson.loads(await response.read())
        assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("method", "path", "length", "status"),
    [
        ("POST", "/device/1?lane=status", 2000, 413),  # the body would be refused
        ("PUT", "/device/1?lane=status", 1, 405),  # and so would the method
        ("POST", "/healthz", 1, 405),
    ],
)
async def test_a_client_expecting_100_continue_is_not_asked_for_a_body_that_is_refused(
    serve: ServeFactory, method: str, path: str, length: int, status: int
) -> None:
    """curl sends ``Expect: 100-continue`` before a large body and waits: aiohttp said
    "100 Continue" to every such request, so the client sent the whole body (megabytes)
    only to read the refusal that was known from the headers. Not asked, the client may
    send the body or not: the answer ends the connection, whose next bytes are either."""
    async with serve(max_body_size=1000) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
            writer.write(head.encode() + b"Expect: 100-continue\r\n\r\n")
            got, headers = await answer_of(reader)
            assert got == status and headers["content-type"] == "application/json", headers
            assert headers.get("connection") == "close", headers
        finally:
            writer.close()
        served.plane.agent("/device/1")  # (a GET reads an agent something made)
        for path in ("/device/1?lane=status", "/healthz"):  # another expectation is ignored
            reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
            try:
                writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\nExpect: x\r\n\r\n" % path.encode())
                status_, headers = await answer_of(reader)
                assert status_ == 200 and headers["content-type"] == "application/json", headers
            finally:
                writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
        try:  # a body that fits is asked for, as before
            fits = b"POST /device/1?lane=status HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
            writer.write(fits + b"Expect: 100-continue\r\n\r\n")
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
                b"HTTP/1.1 100 Continue\r\n\r\n"
            )
            writer.write(b"7")
            status, headers = await answer_of(reader)
            assert status == 200 and "connection" not in headers, headers  # kept alive
        finally:
            writer.close()
        assert served.plane.get("/device/1", "status") == 7


async def test_malformed_requests_are_one_warning_line_not_error_tracebacks(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp answers them 400 itself and logged each at ERROR with a traceback: any
    client could flood the log. Now: a line without traceback, then a count."""
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
        writer.write(b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r.levelname for r in lines] == ["WARNING"], [r.getMessage() for r in lines]
    assert "a malformed request was answered 400" in lines[0].getMessage()
    assert lines[0].exc_info is None
    served.plane.agent("/device/1")
    status, _ = await served.get_json("/device/1?lane=status")
    assert status == 200


async def test_malformed_requests_held_back_are_counted_when_the_server_stops(
    serve: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A burst of them just before the stop read as one request in the log."""
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    async with serve() as served:
        for _ in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
            writer.write(b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.read(), 5)
            writer.close()
        assert len([r for r in caplog.records if r.name == "aiohttp.server"]) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 2, lines
    assert lines[1].startswith("a malformed request was answered 400")
    assert lines[1].endswith(" (2 more since the last report)")  # (and this one)


async def test_the_servers_own_paths_answer_405_to_other_methods(served: Served) -> None:
    """(POST /healthz said "no agent route matches '/healthz'": they are not node URIs.)"""
    for method, path in (("POST", "/healthz"), ("POST", "/metrics"), ("DELETE", "/_routes")):
        async with served.client.request(method, served.url(path)) as response:
            assert response.status == 405, (method, path)
            assert response.headers["Allow"] == "GET, HEAD"
            assert "answers GET only" in (await response.json())["error"]


async def test_a_read_of_an_agent_nothing_made_is_404_and_makes_none(serve: ServeFactory) -> None:
    """A GET is a read. It made the agent, so its on_start ran (a tower registers with
    the world, a timer would start publishing and be stored): a typo in a URL left
    agents behind for good. A record, a command or a stream (a link) makes one."""
    async with serve(idle_timeout=5) as served:
        status, body = await served.get_json("/tower/typo?lane=summary")
        assert (status, body["error"]) == (
            404,
            "no agent /tower/typo yet: no record, command or link has made it (a read "
            "makes none; a POST or a stream does)",
        )
        assert served.plane.active_agents == 0
        assert (await served.post_json("/device/1?lane=reading", reading(50.0)))[0] == 200
        await served.plane.settle()
        assert (await served.get_json("/tower/a?lane=summary"))[0] == 200
        await served.plane.advance(30)  # passivated: stored, so it exists
        assert not served.plane.is_active("/device/1")
        status, body = await served.get_json("/device/1?lane=status")
        assert (status, body["temp"]) == (200, 50.0)
        async with served.client.get(served.url("/device/2?lane=status&stream=1")) as stream:
            assert (await EventReader(stream).next())[0] == "state"
        assert served.plane.is_active("/device/2")


class CountingStore(MemoryAgentStore):
    """An agent store that counts its loads, by node URI (a load reads and decodes)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: Counter[str] = Counter()

    def load(self, node_uri: str) -> StoredAgent | None:
        self.loads[node_uri] += 1
        return super().load(node_uri)


async def test_a_read_of_a_passivated_agent_loads_it_from_the_store_once(
    serve: ServeFactory,
) -> None:
    """Whether a passivated agent exists and its state are one read of the store: asking
    the store first (a read makes no agent), then activating, loaded it twice."""
    store = CountingStore()
    async with serve(store=store, idle_timeout=5) as served:
        assert (await served.post_json("/device/1?lane=reading", reading(50.0)))[0] == 200
        await served.plane.advance(30)
        assert not served.plane.is_active("/device/1")
        store.loads.clear()

        status, body = await served.get_json("/device/1?lane=status")

        assert (status, body["temp"]) == (200, 50.0)
        assert store.loads["/device/1"] == 1
        assert served.plane.is_active("/device/1")
        assert (await served.get_json("/device/1?lane=readings")) == (200, 1)
        assert (await served.get_json("/device/2?lane=status"))[0] == 404
        assert (store.loads["/device/1"], store.loads["/device/2"]) == (1, 1)
        assert not served.plane.is_active("/device/2")


async def test_a_client_that_never_reads_its_answer_is_dropped(
    serve: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A GET of a large lane whose client reads nothing held its connection, its handler
    and the whole body in memory for as long as the client kept the connection open
    (hours): a few such clients held gigabytes. Streams dropped such clients already."""
    caplog.set_level(logging.INFO, "swimstream.web")
    loop = asyncio.get_running_loop()
    async with serve(heartbeat_interval=0.1) as served:
        pad = "x" * 4_000_000
        await served.plane.command("/device/13", "status", {"pad": pad})
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connecting
        client.setblocking(False)
        received = 0
        try:
            await loop.sock_connect(client, ("127.0.0.1", served.server.port))
            await loop.sock_sendall(
                client, b"GET /device/13?lane=status HTTP/1.1\r\nHost: x\r\n\r\n"
            )  # and it reads nothing
            await wait_until(
                lambda: any("had not taken its answer" in r.getMessage() for r in caplog.records),
                what="the client that reads nothing to be dropped",
            )
            with contextlib.suppress(ConnectionError):
                async with asyncio.timeout(5):
                    while chunk := await loop.sock_recv(client, 65536):
                        received += len(chunk)
        finally:
            client.close()
        assert received < len(pad)
        assert (await served.get_json("/device/13?lane=status"))[0] == 200  # it serves on


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_a_post_from_another_site_s_page_is_refused_and_runs_nothing(
    served: Served, site: str
) -> None:
    """A page of another site may post ``text/plain`` without a CORS preflight: the
    browser's ``Sec-Fetch-Site`` says so, and the command is refused before it runs."""
    for path in ("/device/1?lane=status", "/_streams?stream=1"):
        async with served.client.post(
            served.url(path), data=b'{"temp": 1.5}', headers={"Sec-Fetch-Site": site}
        ) as response:
            assert response.status == 403
            assert "another site's page is refused" in (await response.json())["error"]
    assert not served.plane.is_active("/device/1")  # (not even made)
    for allowed in ("same-origin", "none", None):  # the dashboard; a typed URL; curl
        headers = {"Sec-Fetch-Site": allowed} if allowed else {}
        async with served.client.post(
            served.url("/device/1?lane=status"), data=b'{"temp": 2.5}', headers=headers
        ) as response:
            assert response.status == 200
    assert served.plane.get("/device/1", "status") == {"temp": 2.5}
