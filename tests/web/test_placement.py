"""Reads and commands for agents of shards this instance does not hold are refused,
naming the shard, and make no copy of the agent here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from swimstream.routing import shard_for
from swimstream.service.placement import Placement
from swimstream.streams import TopicPartition
from tests.web.harness import ServeFactory, reading

SHARDS = 4
TOPIC = "readings"


class Group:
    """What the consumer group gave this instance, as a test sets it."""

    def __init__(self, *partitions: int) -> None:
        self.partitions = set(partitions)
        self.restoring: set[int] = set()
        self.revoking: set[int] = set()

    def assigned(self) -> list[TopicPartition]:
        # A partition of another topic is no shard of these sources.
        return [TopicPartition(TOPIC, p) for p in self.partitions] + [TopicPartition("x", 9)]

    def placement(self) -> Placement:
        return Placement(
            lambda node: shard_for(node.rsplit("/", 1)[1].encode(), SHARDS, "murmur2"),
            [TOPIC],
            self.assigned,
            lambda: self.restoring,
            lambda: self.revoking,
        )


def shard_of(device: str) -> int:
    return shard_for(device.encode(), SHARDS, "murmur2")


async def test_an_agent_of_a_held_shard_is_served(serve: ServeFactory) -> None:
    group = Group(shard_of("7"))
    async with serve(placement=group.placement()) as served:
        assert await served.post_json("/device/7?lane=reading", reading(50.0)) == (
            200,
            {"ok": True},
        )
        status, body = await served.get_json("/device/7?lane=status")
        assert (status, body["temp"]) == (200, 50.0)


async def test_an_agent_of_another_instance_s_shard_is_refused_and_not_copied(
    serve: ServeFactory,
) -> None:
    shard = shard_of("7")
    others = [p for p in range(SHARDS) if p != shard]
    group = Group(*others)
    async with serve(placement=group.placement()) as served:
        for status, body in (
            await served.get_json("/device/7?lane=status"),
            await served.post_json("/device/7?lane=reading", reading(50.0)),
        ):
            assert (status, body["shard"]) == (421, shard)
            assert body["error"] == (
                f"agent /device/7 is in shard {shard}, which another instance holds (this "
                f"one holds 3 shards: {others}); ask the instance that holds partition "
                f"{shard} of the source topics"
            )
        assert not served.plane.is_active("/device/7")
        assert (await served.get_json("/device/7?lane=nope"))[0] == 404  # still named first


async def test_between_assignments_and_while_restoring_the_answer_is_retry(
    serve: ServeFactory,
) -> None:
    shard = shard_of("7")
    group = Group()
    async with serve(placement=group.placement()) as served:
        async with served.client.get(served.url("/device/7?lane=status")) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert "holds no partition yet" in (await response.json())["error"]
        group.partitions.add(shard)
        group.restoring.add(shard)
        status, body = await served.get_json("/device/7?lane=status")
        assert (status, body["error"]) == (
            503,
            f"shard {shard} of agent /device/7 is being restored here",
        )
        group.restoring.clear()
        served.plane.agent("/device/7")
        assert (await served.get_json("/device/7?lane=status"))[0] == 200


async def test_while_a_revoke_commits_reads_are_served_and_commands_told_to_retry(
    serve: ServeFactory,
) -> None:
    """A command run after the revoke's checkpoint would be in no checkpoint: the shard's
    next owner would never see it, though its client got a 200."""
    shard = shard_of("7")
    group = Group(shard)
    async with serve(placement=group.placement()) as served:
        assert (await served.post_json("/device/7?lane=reading", reading(50.0)))[0] == 200
        group.revoking.add(shard)
        assert (await served.get_json("/device/7?lane=status"))[0] == 200
        async with served.client.post(
            served.url("/device/7?lane=reading"), json=reading(60.0)
        ) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert (await response.json())["error"] == (
                f"shard {shard} of agent /device/7 is being handed over (a rebalance): its "
                "commands wait until the group assigns it"
            )
        group.revoking.clear()
        # A command whose body was still on its way when the revoke began is refused too.
        sent = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            body = orjson.dumps(reading(70.0))
            yield body[:5]
            await sent.wait()
            yield body[5:]

        posting = asyncio.create_task(
            served.client.post(served.url("/device/7?lane=reading"), data=slow_body())
        )
        await asyncio.sleep(0.2)  # (the headers are in: the request passed the first check)
        group.revoking.add(shard)
        sent.set()
        async with await posting as response:
            assert response.status == 503, await response.text()
        status, body = await served.get_json("/device/7?lane=status")
        assert (status, body["temp"]) == (200, 50.0)  # neither refused command ran
