"""Whether this instance holds an agent's shard, for the reads and commands of HTTP.

With several instances in one consumer group, an agent lives where its shard (the
partition of its key) is assigned. Until the mesh forwards requests, a read or a
command for an agent of another instance's shard cannot be served here: answering from
a copy made on the spot would show state this instance does not have, and a command
applied to such a copy would be checkpointed into a shard another instance writes. So
such a request is refused, naming the shard, as Kafka Streams' interactive queries say
a key is not local: 421 (Misdirected Request) when another instance holds the shard,
503 while this instance holds no partition yet (joining the group, or between the
revoke and the assignment of a rebalance) or is still restoring the shard's state.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from swimstream.streams import TopicPartition
from swimstream.text import counted


@dataclass(frozen=True)
class Misplaced:
    """Why this instance does not serve an agent now, as an HTTP answer."""

    status: int
    message: str
    shard: int


class Placement:
    """``placement(node_uri)``: None when this instance serves the agent, else why not."""

    def __init__(
        self,
        shard_of: Callable[[str], int],
        topics: Collection[str],
        assigned: Callable[[], Iterable[TopicPartition]],
        restoring: Callable[[], Collection[int]] = frozenset,
    ) -> None:
        """``assigned`` tells the partitions this instance's sources hold now, and
        ``restoring`` the shards whose state it is still reading."""
        self._shard_of = shard_of
        self._topics = frozenset(topics)
        self._assigned = assigned
        self._restoring = restoring

    def held(self) -> set[int]:
        """The shards whose partitions this instance holds now."""
        return {tp.partition for tp in self._assigned() if tp.topic in self._topics}

    def __call__(self, node_uri: str) -> Misplaced | None:
        shard = self._shard_of(node_uri)
        held = self.held()
        if shard in held:
            if shard in self._restoring():
                return Misplaced(
                    503, f"shard {shard} of agent {node_uri} is being restored here", shard
                )
            return None
        if not held:
            return Misplaced(
                503,
                f"this instance holds no partition yet (it is joining its group or "
                f"rebalancing), so not shard {shard} of agent {node_uri}",
                shard,
            )
        return Misplaced(
            421,
            f"agent {node_uri} is in shard {shard}, which another instance holds (this one "
            f"holds {counted(len(held), 'shard')}: {sorted(held)}); ask the instance that "
            f"holds partition {shard} of the source topics",
            shard,
        )
