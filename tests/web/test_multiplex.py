"""One stream for many lanes (``/_streams``): links come and go on an open stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.towers import ROUTES
from swimstream.errors import StoreError
from swimstream.metrics import MetricsRegistry
from swimstream.runtime import MemoryAgentStore
from swimstream.runtime.agent_record import StoredAgent
from swimstream.testing import open_plane
from swimstream.web.multiplex import Multiplex
from swimstream.web.shared import WebSettings, WebState, dumps
from tests.support.waiting import wait_until
from tests.web.harness import (
    EventReader,
    Served,
    ServeFactory,
    SettableHealth,
    Valve,
    reading,
)


@dataclass
class Mux:
    """An open multiplexed stream: its id, its events, and a way to change its links."""

    served: Served
    stream_id: str
    events: EventReader

    async def change(
        self, link: Sequence[tuple[int, str, str]] = (), unlink: Sequence[int] = ()
    ) -> tuple[int, Any]:
        """POST a change of this stream's links; the status and the answer."""
        body = {
            "link": [{"id": n, "node": node, "lane": lane} for n, node, lane in link],
            "unlink": list(unlink),
        }
        return await self.served.post_json(f"/_streams?stream={self.stream_id}", body)

    async def next(self) -> tuple[str, Any]:
        return await self.events.next()


@contextlib.asynccontextmanager
async def multiplexed(served: Served) -> AsyncIterator[Mux]:
    async with served.client.get(served.url("/_streams")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = EventReader(response)
        name, opened = await events.next()
        assert name == "opened"
        yield Mux(served, opened["stream"], events)


async def test_lanes_of_several_agents_share_one_stream_and_come_and_go(served: Served) -> None:
    await served.plane.command("/device/1", "status", {"temp": 1.0})
    async with multiplexed(served) as mux:
        assert await mux.change([(1, "/device/1", "status"), (2, "/device/2", "history")]) == (
            200,
            {"linked": [1, 2], "refused": []},
        )
        got = [await mux.next() for _ in range(4)]
        assert got == [
            ("state", {"link": 1, "data": {"temp": 1.0}}),
            (
                "synced",
                {"link": 1, "data": {"node": "/device/1", "lane": "status", "kind": "value"}},
            ),
            ("state", {"link": 2, "data": {}}),
            (
                "synced",
                {"link": 2, "data": {"node": "/device/2", "lane": "history", "kind": "map"}},
            ),
        ]
        await served.post_json("/device/2?lane=history", {"update": 5, "value": 2.5})
        assert await mux.next() == ("update", {"link": 2, "data": {"update": 5, "value": 2.5}})
        await served.post_json("/device/1?lane=reading", reading(3.0, "a", 7))
        assert await mux.next() == (
            "set",
            {"link": 1, "data": {"temp": 3.0, "tower": "a", "ts": 7}},
        )
        assert "swimstream_web_streams_open 2\n" in served.registry.render()

        assert await mux.change(unlink=[1]) == (200, {"linked": [], "refused": []})
        await served.post_json("/device/1?lane=status", "unseen")
        await served.post_json("/device/2?lane=history", {"remove": 5})
        assert await mux.next() == ("remove", {"link": 2, "data": {"remove": 5}})
        assert "swimstream_web_streams_open 1\n" in served.registry.render()

        # a lane linked anew later syncs, and a name linked again replaces its link
        assert (await mux.change([(1, "/device/1", "status")]))[0] == 200
        assert await mux.next() == ("state", {"link": 1, "data": "unseen"})
        assert (await mux.next())[0] == "synced"
        assert (await mux.change([(2, "/device/1", "status")]))[1]["linked"] == [2]
        assert await mux.next() == ("state", {"link": 2, "data": "unseen"})
        assert (await mux.next())[0] == "synced"
        assert "swimstream_web_streams_open 2\n" in served.registry.render()
    await wait_until(lambda: "swimstream_web_streams_open 0\n" in served.registry.render())
    await wait_until(lambda: served.plane.statistics().links == 0)


async def test_a_lane_that_cannot_be_linked_is_refused_as_its_stream_would_be(
    serve: ServeFactory,
) -> None:
    async with serve(max_streams=1) as served, multiplexed(served) as mux:
        status, answer = await mux.change(
            [(1, "/device/1", "status"), (2, "/device/1", "nope"), (3, "/nowhere/1", "x")]
        )
        assert status == 200
        assert answer["linked"] == [1]
        refused = {entry["id"]: entry for entry in answer["refused"]}
        assert refused[2]["status"] == 404 and "no lane 'nope'" in refused[2]["error"]
        assert refused[3]["status"] == 404
        full = (await mux.change([(4, "/device/2", "status")]))[1]["refused"][0]
        assert full["status"] == 503 and full["max_streams"] == 1  # the one slot is taken
        assert (await mux.change([(4, "/device/2", "status")], unlink=[1]))[1]["linked"] == [4]
        for body in ([1], {"link": [{"id": -1, "node": "/device/1", "lane": "status"}]}):
            assert (await served.post_json(f"/_streams?stream={mux.stream_id}", body))[0] == 400
        assert (await served.post_json("/_streams?stream=guessed", {"link": []}))[0] == 404


async def test_a_change_whose_body_never_arrives_or_cannot_be_decoded_is_refused(
    serve: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A change's body is read as a command's is: it held its handler for good when it
    stopped coming, and a corrupt gzip body was a 500 with a traceback per request."""
    async with serve(heartbeat_interval=0.1) as served, multiplexed(served) as mux:
        url = f"/_streams?stream={mux.stream_id}".encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
        writer.write(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{" % url)
        await writer.drain()  # and the rest never comes
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
        assert head.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in head, head

        caplog.set_level(logging.ERROR, logger="swimstream.web")
        gzip = {"Content-Encoding": "gzip"}
        async with served.client.post(served.url(url.decode()), data=b"{}", headers=gzip) as got:
            assert got.status == 400
            assert (await got.json())["error"].startswith("the body cannot be read: ")
        assert not caplog.records
        assert (await mux.change([(1, "/device/1", "status")]))[1]["linked"] == [1]


async def test_a_change_nested_deep_is_400_naming_what_is_wrong_in_short(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """(Its error message held the repr of the wrong part, which Python refuses past
    1,000 levels, and orjson reads 1,024: a 500 and a traceback per such request.)"""
    caplog.set_level(logging.ERROR, logger="swimstream.web")
    deep = b"[" * 1000 + b"]" * 1000
    async with multiplexed(served) as mux:
        url = served.url(f"/_streams?stream={mux.stream_id}")
        for body in (b'{"link": [%s]}' % deep, b'{"link": %s}' % deep, b'{"unlink": %s}' % deep):
            async with served.client.post(url, data=body) as response:
                assert response.status == 400, await response.text()
                error = (await response.json())["error"]
            assert error.startswith("the body is not a change of links: ") and len(error) < 200
    assert not caplog.records


class DamagedStore(MemoryAgentStore):
    """A store that cannot read any agent back (a corrupt file)."""

    def load(self, node_uri: str) -> StoredAgent | None:
        raise StoreError(f"the store is damaged under {node_uri}")


async def test_a_lane_whose_store_is_damaged_is_refused_503_as_its_stream_would_be(
    serve: ServeFactory,
) -> None:
    """(A lane stream answers 503; a link failed the whole change with a 500.)"""
    async with serve(store=DamagedStore()) as served, multiplexed(served) as mux:
        async with served.client.get(served.url("/device/1?lane=status&stream=1")) as response:
            assert response.status == 503
        status, answer = await mux.change([(1, "/device/1", "status")])
        assert status == 200 and answer["linked"] == []
        assert answer["refused"] == [
            {"id": 1, "status": 503, "error": "the store is damaged under /device/1"}
        ]
        assert "swimstream_web_streams_open 0\n" in served.registry.render()


async def test_a_link_whose_agent_is_forgotten_is_unlinked_and_links_again_afresh(
    served: Served,
) -> None:
    await served.post_json("/device/6?lane=history", {"update": 1, "value": 50.0})
    async with multiplexed(served) as mux:
        await mux.change([(9, "/device/6", "history")])
        assert await mux.next() == ("state", {"link": 9, "data": {"1": 50.0}})
        assert (await mux.next())[0] == "synced"
        assert served.plane.forget_agents(lambda node: node == "/device/6") == 1
        assert await mux.next() == ("unlinked", {"link": 9})
        await wait_until(lambda: "swimstream_web_streams_open 0\n" in served.registry.render())
        await mux.change([(9, "/device/6", "history")])
        assert await mux.next() == ("state", {"link": 9, "data": {}})  # as its store has it


async def test_a_change_whose_client_left_before_the_sync_frees_its_slot_and_link(
    served: Served,
) -> None:
    """A link waits for its agent's turn to sync; the server cancels the POST's handler
    when its client leaves meanwhile. The link it made must go with it: the stream does
    not know it yet, so nothing else would ever unlink it or free its slot."""
    served.plane.submit("/valve/1", "hold", None)  # the valve's turn holds its mailbox
    try:
        await wait_until(lambda: Valve.entered == 1)
        links = served.plane.statistics().links
        async with multiplexed(served) as mux:
            body = orjson.dumps({"link": [{"id": 1, "node": "/valve/1", "lane": "passed"}]})
            url = served.url("/")
            _, writer = await asyncio.open_connection(url.host, url.port)
            writer.write(
                b"POST /_streams?stream=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                % (mux.stream_id.encode(), len(body), body)
            )
            await writer.drain()
            await wait_until(lambda: "swimstream_web_streams_open 1\n" in served.registry.render())
            writer.close()  # the client gives up before its answer
            await writer.wait_closed()
            await asyncio.sleep(0.1)
            Valve.opened.set()  # the sync happens now, for nobody
            await served.plane.settle()
            await wait_until(lambda: "swimstream_web_streams_open 0\n" in served.registry.render())
            assert served.plane.statistics().links == links
            # the stream serves on, and the name links afresh
            assert (await mux.change([(1, "/valve/1", "passed")]))[1]["linked"] == [1]
            assert await mux.next() == ("state", {"link": 1, "data": 1})
    finally:
        Valve.opened.set()


async def test_stopping_the_server_ends_a_multiplexed_stream_and_its_links(
    served: Served,
) -> None:
    async with multiplexed(served) as mux:
        await mux.change([(1, "/device/7", "status"), (2, "/device/8", "status")])
        assert [(await mux.next())[0] for _ in range(4)] == ["state", "synced"] * 2
        await served.server.__aexit__(None, None, None)
        try:
            await mux.next()
            raise AssertionError("the stream should have ended")
        except (EOFError, aiohttp.ClientPayloadError):
            pass
    assert served.plane.statistics().links == 0


MapChange = tuple[int, str, int, float]  # (agent, "update" | "remove" | "clear", key, value)
CHANGES = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.sampled_from(["update", "update", "remove", "clear", "flush"]),
        st.integers(0, 5),
        st.floats(-10, 10, allow_nan=False),
    ),
    max_size=40,
)


def replay(events: bytes, states: dict[int, dict[str, Any]]) -> None:
    """Apply a multiplexed stream's events to each link's copy of its map lane."""
    for block in events.decode().split("\n\n"):
        if not block:
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        message = orjson.loads(lines["data"])
        state, data = states.setdefault(message["link"], {}), message["data"]
        if lines["event"] == "state":
            state.clear()
            state.update(data)
        elif lines["event"] == "update":
            state[str(data["update"])] = data["value"]
        elif lines["event"] == "remove":
            state.pop(str(data["remove"]), None)
        elif lines["event"] == "clear":
            state.clear()


@settings(max_examples=40, deadline=None)
@given(changes=CHANGES)
def test_the_links_of_a_multiplexed_stream_each_converge_on_their_lane(
    changes: list[MapChange],
) -> None:
    """Whatever changes come, however coalesced between flushes, each link's events
    rebuild its own lane exactly, as GET answers it."""

    async def run() -> None:
        async with open_plane(ROUTES) as plane:
            settings_ = WebSettings()
            state = WebState(plane, MetricsRegistry(), SettableHealth(), settings_, started=0.0)
            mux = Multiplex(state)
            nodes = ["/device/0", "/device/1"]
            answer = await mux.change([(n, node, "history") for n, node in enumerate(nodes)], [])
            assert answer == {"linked": [0, 1], "refused": []}
            copies: dict[int, dict[str, Any]] = {}
            for agent, change, key, value in changes:
                if change == "flush":
                    await plane.settle()
                    replay(mux.take_events(), copies)
                    continue
                command: Any = {"update": key, "value": value} if change == "update" else None
                command = command or ({"remove": key} if change == "remove" else {"clear": True})
                await plane.command(nodes[agent], "history", command)
            await plane.settle()
            replay(mux.take_events(), copies)
            for n, node in enumerate(nodes):
                assert copies[n] == orjson.loads(dumps(plane.get(node, "history")))
            mux.close()
            assert plane.statistics().links == 0

    asyncio.run(run())


async def test_a_link_unlinked_before_its_sync_was_written_writes_nothing_after() -> None:
    """Its sync, queued, went out after the POST that unlinked it was answered: a client
    that named another link the same took the first lane's state for the second's."""
    async with open_plane(ROUTES) as plane:
        await plane.command("/device/1", "status", {"temp": 1.0})
        state = WebState(plane, MetricsRegistry(), SettableHealth(), WebSettings(), started=0.0)
        mux = Multiplex(state)
        assert await mux.change([(1, "/device/1", "status")], []) == {"linked": [1], "refused": []}
        await mux.change([], [1])
        assert mux.take_events() == b""
        await mux.change([(1, "/device/1", "status")], [])
        await mux.change([(1, "/device/2", "status")], [1])  # the name used again at once
        events = [line for line in mux.take_events().split(b"\n") if line.startswith(b"data:")]
        assert events == [
            b'data: {"link":1,"data":null}',
            b'data: {"link":1,"data":{"node":"/device/2","lane":"status","kind":"value"}}',
        ]
        mux.close()
