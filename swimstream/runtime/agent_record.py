"""An agent's stored form: lane snapshots and open links, in one msgpack record.

Everything an agent must not lose across passivation (and, with a durable store,
across restarts) is here: each stateful lane's CRDT snapshot, and each open downlink
with its target, callbacks (by method name), join tag and replica. Timers are not:
they stay armed in the plane's timer wheel while the agent sleeps.

Restoring reopens each link under its old id. Within one process the link is still
registered (a passivated subscriber's links stay open, collecting coalesced changes),
so nothing is re-synced; after a restart the link is opened afresh and syncs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack

from swimstream.agent import MapDownlink
from swimstream.crdt import decode_snapshot, encode
from swimstream.errors import CodecError

if TYPE_CHECKING:
    from swimstream.agent import Agent

RECORD_VERSION = 1


def dump_agent(agent: Agent) -> bytes:
    """The record of ``agent``'s lanes and links."""
    lanes: dict[str, bytes] = {}
    for lane in agent.bound_lanes():
        if lane.stateful:
            snapshot = lane.snapshot()
            if snapshot is not None:
                lanes[lane.name] = encode(snapshot)
    links = [
        [
            downlink.id,
            downlink.node_uri,
            downlink.lane,
            isinstance(downlink, MapDownlink),
            downlink.callbacks,
            None if downlink.join is None else list(downlink.join),
            encode(downlink.snapshot()),
        ]
        for downlink in agent.downlinks.values()
    ]
    return msgpack.packb(
        {"v": RECORD_VERSION, "lanes": lanes, "links": links, "next_link": agent._next_link_id},
        use_bin_type=True,
    )


def restore_agent(agent: Agent, record: bytes) -> None:
    """Load ``record`` into a freshly attached ``agent`` (no callbacks fire)."""
    try:
        data: dict[str, Any] = msgpack.unpackb(record, raw=False, strict_map_key=False)
        if data.get("v") != RECORD_VERSION:
            raise CodecError(f"agent record version {data.get('v')!r} is not {RECORD_VERSION}")
        lanes: dict[str, bytes] = data["lanes"]
        links: list[list[Any]] = data["links"]
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"stored record of {agent.node_uri} is unreadable: {exc}") from exc
    for name, blob in lanes.items():
        if name in type(agent).__swim_lanes__:
            agent.lane(name)._restore(decode_snapshot(blob))
    agent._next_link_id = max(agent._next_link_id, int(data.get("next_link", 1)))
    for link_id, node_uri, lane, map_like, callbacks, join, replica in links:
        join_tag = None if join is None else (join[0], join[1])
        downlink = agent._open_link(node_uri, lane, callbacks, join_tag, map_like, link_id)
        downlink._restore(decode_snapshot(replica))
        if join_tag is not None and join_tag[0] in type(agent).__swim_lanes__:
            agent.lane(join_tag[0])._adopt(join_tag[1], downlink)  # type: ignore[attr-defined]
