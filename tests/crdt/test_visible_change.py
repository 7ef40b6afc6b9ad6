"""A write of a value Python holds equal but JSON spells otherwise is a change.

``True == 1 == 1.0`` and ``0.0 == -0.0`` in Python, and ``{"on": 1} == {"on": True}``;
as JSON (what HTTP, links' clients and sinks read) they differ. Replicas compared
values with ``!=``: a write from ``true`` to ``1`` reported no change, so a join kept
showing ``true`` while its target showed ``1``, and nothing downstream heard of it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, JoinMapLane, JoinValueLane, MapLane, ValueLane
from swimstream.crdt import LWWMap, LWWRegister
from swimstream.crdt.stamp import differs
from swimstream.testing import open_plane

EQUAL_BUT_SPELT_OTHERWISE = [
    (True, 1),
    (1, 1.0),
    (False, 0),
    (0.0, -0.0),
    ({"on": True}, {"on": 1}),
    ([1, {"t": 20}], [1, {"t": 20.0}]),
    ({1: "a"}, {True: "a"}),
    ({0.0: "a"}, {-0.0: "a"}),
]


@pytest.mark.parametrize(("before", "after"), EQUAL_BUT_SPELT_OTHERWISE)
def test_a_replica_reports_a_write_that_reads_otherwise_as_json(before: Any, after: Any) -> None:
    owner, replica = LWWRegister("o"), LWWRegister("r")
    replica.apply(owner.set(before))
    assert replica.apply(owner.set(after))
    assert json.dumps(replica.get()) == json.dumps(after)
    owned, mirrored = LWWMap("o"), LWWMap("r")
    mirrored.apply(owned.put("k", before))
    assert mirrored.apply(owned.put("k", after))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5])
    | st.text(max_size=2),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.integers(-1, 1) | st.booleans() | st.text(max_size=1), inner, max_size=3
        )
    ),
    max_leaves=8,
)


@given(json_values, json_values)
def test_a_change_is_what_reads_otherwise_as_json(old: Any, new: Any) -> None:
    reads_otherwise = json.dumps(new, sort_keys=False) != json.dumps(old, sort_keys=False)
    if reads_otherwise and new == old and _orders_differ(new, old):
        return  # (equal objects of keys in another order: the same state)
    assert differs(new, old) == reads_otherwise or (new is old and isinstance(new, dict | list))


def _orders_differ(new: Any, old: Any) -> bool:
    """Whether equal values differ only in the order of their objects' keys."""
    return json.dumps(_sorted(new)) == json.dumps(_sorted(old))


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted(([json.dumps(k), _sorted(v)] for k, v in value.items()), key=str)
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class Sensor(Agent):
    flag = ValueLane[Any](default=None)


class Panel(Agent):
    flags = JoinValueLane[str, Any]()
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, uri: str) -> None:
        self.flags.join(uri, node=uri, lane="flag")


async def test_a_join_follows_its_target_from_true_to_one() -> None:
    async with open_plane({"/sensor/:id": Sensor, "/panel/:id": Panel}) as plane:
        await plane.command("/sensor/1", "flag", True)
        await plane.command("/panel/p", "watch", "/sensor/1")
        await plane.settle()
        assert json.dumps(plane.get("/panel/p", "flags")) == '{"/sensor/1": true}'
        await plane.command("/sensor/1", "flag", 1)
        await plane.settle()
        assert json.dumps(plane.get("/sensor/1", "flag")) == "1"
        assert json.dumps(plane.get("/panel/p", "flags")) == '{"/sensor/1": 1}'


class Catalog(Agent):
    items = MapLane[str, Any]()


class Shop(Agent):
    stock = JoinMapLane[str, Any]()
    source = CommandLane[str]()
    drop = CommandLane[str]()

    @source.on_command
    def on_source(self, name: str) -> None:
        self.stock.join(name, f"/catalog/{name}", "items")

    @drop.on_command
    def on_drop(self, name: str) -> None:
        self.stock.remove(name)


async def test_a_join_map_falls_back_to_a_value_that_reads_otherwise() -> None:
    """The joined maps hold ``k``: ``a`` as ``1``, ``b`` as ``true``. Once ``b``'s link
    goes, the join takes ``a``'s value, which it found equal to ``true`` and kept not:
    it went on showing ``b``'s value, from a link no longer there."""
    routes = {"/catalog/:id": Catalog, "/shop/:id": Shop}
    async with open_plane(routes) as plane:
        await plane.command("/catalog/a", "items", {"update": "k", "value": 1})
        await plane.command("/catalog/b", "items", {"update": "k", "value": True})
        for name in "ab":
            await plane.command("/shop/s", "source", name)
            await plane.settle()
        assert json.dumps(plane.get("/shop/s", "stock")) == '{"k": true}'
        await plane.command("/shop/s", "drop", "b")
        await plane.settle()
        assert json.dumps(plane.get("/shop/s", "stock")) == '{"k": 1}'
