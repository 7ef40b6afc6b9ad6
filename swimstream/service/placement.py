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
A command is also refused with 503 while a revoke commits the shard's checkpoint: the
command would run after the revoke's cut, in state that the shard's next owner, or this
instance after an eager revoke, does not get from the changelog. Reads are served then:
the state is still here and still current.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from swimstream.ratelimit import RateLimit
from swimstream.streams import TopicPartition
from swimstream.text import counted

log = logging.getLogger("swimstream.placement")

WARN_INTERVAL = 60.0
"""Seconds between two warnings about agents made on the wrong instance."""


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
        revoking: Callable[[], Collection[int]] = frozenset,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``assigned`` tells the partitions this instance's sources hold now,
        ``restoring`` the shards whose state it is still reading, and ``revoking`` those
        a revoke is committing before they go; ``clock`` (seconds) paces the warnings."""
        self._shard_of = shard_of
        self._topics = frozenset(topics)
        self._assigned = assigned
        self._restoring = restoring
        self._revoking = revoking
        self.misplaced = 0
        """Agents made in memory here although another instance held their shard."""
        self._warnings = RateLimit[None](WARN_INTERVAL, clock)

    def held(self) -> set[int]:
        """The shards whose partitions this instance holds now."""
        return {tp.partition for tp in self._assigned() if tp.topic in self._topics}

    def __call__(self, node_uri: str, *, command: bool = False) -> Misplaced | None:
        """Whether to refuse a read of ``node_uri``, or a ``command`` to it."""
        shard = self._shard_of(node_uri)
        held = self.held()
        if shard in held:
            if shard in self._restoring():
                return Misplaced(
                    503, f"shard {shard} of agent {node_uri} is being restored here", shard
                )
            if command and shard in self._revoking():
                return Misplaced(
                    503,
                    f"shard {shard} of agent {node_uri} is being handed over (a rebalance): "
                    "its commands wait until the group assigns it",
                    shard,
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

    def note_made(self, node_uri: str) -> None:
        """An agent was made in memory here (a record, a command, a link, a timer):
        count it, and warn now and then, when another instance holds its shard.

        Commands and links between agents are not forwarded yet either, so an agent
        that gathers from every partition (a tower joining devices) gets a copy on
        each instance, none of them whole, each checkpointed into the same shard.
        """
        misplaced = self(node_uri)
        if misplaced is None or misplaced.status != 421:
            return  # (held here, or nothing held yet: no one to tell apart)
        self.misplaced += 1
        unwarned = self._warnings.admit()
        if unwarned is None:
            return
        log.warning(
            "%s made on this instance for shards another instance holds, the last %s "
            "(agents that command or link agents of other partitions need a single "
            "instance until the mesh forwards between instances)",
            counted(unwarned + 1, "agent"),
            node_uri,
            extra={"node": node_uri, "shard": misplaced.shard},
        )
