"""An agent's stored form: one value per lane, and one for its open links.

A stored agent is a mapping ``name -> bytes``: each stateful lane's CRDT snapshot under
the lane's name, and the agent's open downlinks under :data:`LINKS` (their targets,
callbacks by method name, join tags, and the replicas of all but join-value links to
value lanes, whose join lane's entry holds their value). The same names key the
changelog (``node#name``) and the local store, so an agent passivated in memory, written
to SQLite, or rebuilt from the changelog is the same thing. Timers are
kept apart (:data:`TIMERS`): they belong to the plane's timer wheel.

Restoring reopens each link under its old id. Within one process, or after a restart
that registered the links up front (:func:`decode_links`), the link end is still there
and nothing re-syncs; a link end that is missing is opened afresh and syncs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from swimstream.agent import MapDownlink
from swimstream.crdt import decode_snapshot, encode
from swimstream.errors import AgentRestoreError, CodecError, DefinitionError, RoutingError

if TYPE_CHECKING:
    from swimstream.agent import Agent, Downlink, Lane

log = logging.getLogger("swimstream.agent")

LINKS = "@links"
"""The stored name of an agent's open downlinks."""

TIMERS = "@timers"
"""The stored name of an agent's pending timers."""

StoredAgent = Mapping[str, bytes]
"""Everything an agent must not lose, by name (lane names, :data:`LINKS`)."""


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One stored downlink."""

    id: int
    node_uri: str
    lane: str
    map_like: bool
    callbacks: dict[str, str]
    join: tuple[str, Any] | None
    replica: bytes | None
    """The replica's snapshot; None for join-value links, whose lane holds the value."""
    synced: bool = True
    """Whether the target's state reached it (stored links of before this field had)."""


def dump_agent(agent: Agent) -> dict[str, bytes]:
    """The stored form of ``agent``: lane snapshots, and its links when it has any."""
    stored: dict[str, bytes] = {}
    for lane in agent.bound_lanes():
        if lane.stateful:
            snapshot = lane.snapshot()
            if snapshot is not None:
                stored[lane.name] = encode(snapshot)
    links = dump_links(agent)
    if links is not None:
        stored[LINKS] = links
    return stored


def dump_links(agent: Agent) -> bytes | None:
    """The agent's open downlinks, encoded; None when it never opened one.

    Kept when none is open, for the next link id: a counter downlink writes as
    ``replica:node:link id``, and a new link reusing a closed one's id would start its
    totals again under that writer, which the owner's merge (the larger total) drops.
    """
    downlinks = agent.downlinks
    if not downlinks and agent._next_link_id <= 1:
        return None
    rows = [
        [
            d.id,
            d.node_uri,
            d.lane,
            isinstance(d, MapDownlink),
            d.callbacks,
            None if d.join is None else list(d.join),
            encode(d.snapshot()) if d.stores_replica else None,
            d.synced,
        ]
        for d in downlinks.values()
    ]
    return msgpack.packb([1, agent._next_link_id, rows], use_bin_type=True)


def decode_links(data: bytes) -> tuple[int, list[LinkSpec]]:
    """``(next link id, links)`` from :func:`dump_links`' bytes."""
    try:
        version, next_link, rows = msgpack.unpackb(data, raw=False, strict_map_key=False)
        if version != 1:
            raise CodecError(f"stored links version {version!r} is not 1")
        return int(next_link), [
            LinkSpec(
                int(row[0]),
                str(row[1]),
                str(row[2]),
                bool(row[3]),
                dict(row[4]),
                None if row[5] is None else (row[5][0], row[5][1]),
                row[6],
                bool(row[7]) if len(row) > 7 else True,
            )
            for row in rows
        ]
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"stored links are unreadable: {exc}") from exc


def restore_agent(agent: Agent, stored: StoredAgent) -> None:
    """Load ``stored`` into a freshly attached ``agent`` (no callbacks fire); raises
    :class:`~swimstream.errors.AgentRestoreError` when it does not fit the agent's class
    (the caller then drops the half-restored agent)."""
    lanes = type(agent).__swim_lanes__
    for name, blob in stored.items():
        if name in lanes:
            lane = agent.lane(name)
            _restore_into(agent, f"lane {name!r} ({type(lane).__name__})", lane, blob)
    links = stored.get(LINKS)
    if links is None:
        return
    try:
        next_link, specs = decode_links(links)
    except CodecError as exc:
        raise AgentRestoreError(f"agent {agent.node_uri} cannot be restored: {exc}") from exc
    agent._next_link_id = max(agent._next_link_id, next_link)
    for spec in specs:
        try:
            downlink = agent._open_link(
                spec.node_uri, spec.lane, spec.callbacks, spec.join, spec.map_like, spec.id
            )
        except (RoutingError, DefinitionError) as exc:
            # Its target lane is gone or changed kind (code changed under stored state):
            # the link goes, as a stored lane the class no longer declares does.
            log.warning(
                "agent %s: its stored link is dropped: %s",
                agent.node_uri,
                exc,
                extra={"node": agent.node_uri},
            )
            continue
        if spec.replica is not None:
            where = f"the downlink to {spec.node_uri}#{spec.lane}"
            _restore_into(agent, where, downlink, spec.replica)
        if spec.join is not None and spec.join[0] in lanes:
            agent.lane(spec.join[0])._adopt(spec.join[1], downlink)  # type: ignore[attr-defined]
        # It holds what it held: the next delivery is not a sync, unless none came yet
        # (its target was busy when it was passivated): then that one is, and a join's
        # entry appears with it even if the target holds its default.
        downlink._synced = spec.synced


def _restore_into(agent: Agent, what: str, target: Lane | Downlink, blob: bytes) -> None:
    """Restore one stored snapshot, checking first that it is the kind ``target`` holds:
    a lane that changed kind under the same name must not take the old kind's state."""
    problem = f"agent {agent.node_uri} cannot be restored: {what}"
    try:
        snapshot = decode_snapshot(blob)
    except CodecError as exc:
        raise AgentRestoreError(f"{problem} has unreadable stored state: {exc}") from exc
    expected = type(target.snapshot())
    if type(snapshot) is not expected:
        raise AgentRestoreError(
            f"{problem} was stored as a {type(snapshot).__name__} and holds a"
            f" {expected.__name__} now; did the lane change kind under the same name?"
        )
    target._restore(snapshot)


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """One stored pending timer: ``method(*args)`` due at wall time ``due``."""

    id: int
    method: str
    args: tuple[Any, ...]
    due: float
    period: float | None


def check_timer_args(method: str, args: tuple[Any, ...]) -> None:
    """Refuse timer arguments that could not be stored, when the timer is scheduled.

    Found at the next checkpoint instead, they would fail it and stop the instance, and
    the record that scheduled the timer, replayed at restart, would do it again. They
    are packed and read back, as a restart reads them: an object keyed by a tuple packs
    (as an array) but does not read back (no array is a key), and stored so, its
    agent's timers stopped every start that re-armed them."""
    try:
        packed = msgpack.packb(list(args), use_bin_type=True)
        msgpack.unpackb(packed, raw=False, strict_map_key=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(
            f"timer {method!r}: arguments must be JSON values, as pending timers are"
            f" stored with the agent ({exc})"
        ) from None


def dump_timers(timers: list[TimerSpec]) -> bytes | None:
    """An agent's pending timers, encoded; None when it has none."""
    if not timers:
        return None
    rows = [[t.id, t.method, list(t.args), t.due, t.period] for t in timers]
    return msgpack.packb([1, rows], use_bin_type=True)


def decode_timers(data: bytes) -> list[TimerSpec]:
    """The timers :func:`dump_timers` encoded."""
    try:
        version, rows = msgpack.unpackb(data, raw=False, strict_map_key=False)
        if version != 1:
            raise CodecError(f"stored timers version {version!r} is not 1")
        return [
            TimerSpec(
                int(r[0]),
                str(r[1]),
                tuple(r[2]),
                float(r[3]),
                None if r[4] is None else float(r[4]),
            )
            for r in rows
        ]
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"stored timers are unreadable: {exc}") from exc


def stored_size(stored: StoredAgent) -> int:
    """Bytes a stored agent takes (values only)."""
    return sum(len(value) for value in stored.values())
