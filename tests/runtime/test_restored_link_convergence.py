"""Links across restores: once settled, every open replica is the owner's state.

As ``test_link_convergence``, with two more steps a shard hand-over makes: the owner
*restored* (dropped from memory with its links kept, and loaded again from what the
store holds, which may be older than what its replicas saw, as a restore from the
changelog's last checkpoint is) and a subscriber *moved* (dropped with its links, and
loaded again from the store, its stored links reopened). Writes through the links
include equal values, whose only effect at the owner is a newer stamp: the owner does
not stream those (nothing visible changed), and these runs show that no replica ends
up disagreeing with the owner for it, whatever the interleaving with removes, clears,
passivations and restores.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from swimstream.runtime import MemoryAgentStore
from swimstream.testing import open_plane
from tests.runtime.test_link_convergence import OWNER_COMMANDS, Owner, Subscriber

KEYS = [0, 1, "a"]
OWNER = "/o/1"
SUBSCRIBERS = ("/s/0", "/s/1")

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("owner"),
            st.sampled_from(sorted(OWNER_COMMANDS)),
            st.sampled_from(KEYS),
            st.integers(0, 1),
        ),
        st.tuples(
            st.sampled_from(SUBSCRIBERS),
            st.sampled_from(["link", "link", "unlink", "put", "remove", "set", "set", "add"]),
            st.sampled_from(KEYS),
            st.integers(0, 1),
        ),
        st.tuples(
            st.sampled_from(["settle", "passivate", "restore", "move"]),
            st.sampled_from([OWNER, *SUBSCRIBERS]),
            st.none(),
            st.none(),
        ),
    ),
    max_size=30,
)


async def run(script: list[tuple[str, Any, Any, Any]]) -> None:
    routes = {"/o/:id": Owner, "/s/:id": Subscriber}
    store = MemoryAgentStore()
    async with open_plane(routes, store=store) as plane:
        for who, verb, key, n in script:
            if who == "owner":
                await plane.command(OWNER, *OWNER_COMMANDS[verb](key, n))
            elif who == "settle":
                await plane.settle()
            elif who == "passivate":
                await plane.settle()
                plane.passivate(verb)
            elif who == "restore":  # the owner comes back as the store holds it
                await plane.settle()
                plane.forget_agents(OWNER.__eq__)
                if plane.activate_existing(OWNER) is False:
                    plane.agent(OWNER)
            elif who == "move":  # a subscriber leaves and comes back, as stored
                await plane.settle()
                if verb != OWNER:
                    plane.forget_agents(verb.__eq__)
            else:
                await plane.command(who, "act", [verb, key, n])
        await plane.settle()
        assert plane.failures.count == 0, plane.failures.last_error
        owner_map = plane.get(OWNER, "m")
        for node in SUBSCRIBERS:
            subscriber = plane.agent(node)
            await plane.settle()  # (a subscriber loaded again reopens its links)
            assert isinstance(subscriber, Subscriber)
            if not subscriber.open_links():
                continue
            map_link, value_link, counter_link = subscriber.links()
            assert map_link.to_dict() == owner_map
            assert plane.get(node, "mirror") == owner_map
            assert value_link.get() == plane.get(OWNER, "v")
            assert counter_link.get() == plane.get(OWNER, "c")


LOST_PUT = [
    ("owner", "put", 0, 0),
    ("passivate", OWNER, None, None),  # (the store holds 0: 0)
    ("/s/0", "link", None, None),
    ("settle", OWNER, None, None),
    ("/s/0", "put", 0, 1),  # newer than the owner's stored entry, and lost with its restore
    ("restore", OWNER, None, None),
]
LOST_REMOVE = [*LOST_PUT[:4], ("/s/0", "remove", 0, 0), ("restore", OWNER, None, None)]
LOST_OWNER_ADD = [
    ("owner", "add", 0, 1),
    ("passivate", OWNER, None, None),  # (the store holds a count of 1)
    ("/s/0", "link", None, None),
    ("settle", OWNER, None, None),
    ("owner", "add", 0, 1),  # counted by the replica, and lost with the owner's restore
    ("restore", OWNER, None, None),
]
LOST_LINK_ADD = [*LOST_OWNER_ADD[:4], ("/s/0", "add", 0, 1), ("restore", OWNER, None, None)]
STORED_OLDER = [
    ("owner", "set", 0, 1),
    ("/s/1", "link", None, None),
    ("passivate", "/s/1", None, None),  # (its stored replica holds the owner's 1)
    ("restore", OWNER, None, None),  # (the owner lost it; the loaded replica took that)
    ("move", "/s/1", None, None),  # (loaded again as stored: the replica holds 1 again)
]


@settings(max_examples=200)
@given(steps)
@example(LOST_PUT)  # (a map replica kept writes newer than the restored owner's entry)
@example(LOST_REMOVE)
@example(LOST_OWNER_ADD)  # (a counter's replica kept totals the restored owner never had)
@example(LOST_LINK_ADD)  # (... its own writer's among them)
@example(STORED_OLDER)  # (a stored link reopened without its end merged its sync)
@example([("owner", "add", 0, 1), *STORED_OLDER[1:]])
def test_open_replicas_converge_across_restores(script: list[tuple[str, Any, Any, Any]]) -> None:
    asyncio.run(run(script))
