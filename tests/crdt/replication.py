"""A small network simulator for CRDT property tests.

Replicas write with coarse fake wall clocks that hypothesis moves forwards and
backwards, so equal timestamps (ties broken by replica id) and clocks stepping back are
common. Between writes, replicas receive some of each other's ops, so later ops depend
causally on earlier ones, as in a running system. Then every replica receives every op,
in its own random order, with some delivered twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from hypothesis import strategies as st

from swimstream.crdt import HybridLogicalClock


class Replica(Protocol):
    def apply(self, op: Any) -> bool: ...


R = TypeVar("R", bound=Replica)


@dataclass
class FakeWall:
    """A wall clock in milliseconds that the test sets by hand."""

    millis: int = 0

    def __call__(self) -> int:
        return self.millis


@dataclass
class Network(Generic[R]):
    replicas: list[R]
    walls: list[FakeWall]
    ops: list[Any] = field(default_factory=list)


def build_network(
    data: st.DataObject,
    make: Callable[[str, HybridLogicalClock], R],
    write: Callable[[R, st.DataObject], list[Any]],
    min_replicas: int = 3,
    max_steps: int = 40,
) -> Network[R]:
    """Replicas that have each written and partly synced; ``net.ops`` holds every op made."""
    count = data.draw(st.integers(min_replicas, min_replicas + 2), label="replicas")
    walls = [FakeWall() for _ in range(count)]
    net = Network([make(f"r{i}", HybridLogicalClock(walls[i])) for i in range(count)], walls)
    for _ in range(data.draw(st.integers(0, max_steps), label="steps")):
        i = data.draw(st.integers(0, count - 1))
        walls[i].millis = data.draw(st.integers(0, 12))  # coarse: ties and backwards steps
        deliver: bool = data.draw(st.booleans())
        if net.ops and deliver:
            net.replicas[i].apply(data.draw(st.sampled_from(net.ops)))
        else:
            net.ops.extend(write(net.replicas[i], data))
    return net


def deliver_everything(data: st.DataObject, net: Network[R]) -> None:
    """Every replica gets every op, in its own order, some twice."""
    for replica in net.replicas:
        repeats: list[Any] = []
        if net.ops:
            repeats = data.draw(st.lists(st.sampled_from(net.ops), max_size=10))
        for op in data.draw(st.permutations(net.ops + repeats)):
            replica.apply(op)


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
map_keys = st.integers(0, 6) | st.sampled_from(["a", "b", "c", "d"])
