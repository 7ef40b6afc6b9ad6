"""The ``processing``, ``mesh``, ``store`` and ``web`` parts: how one instance runs.

Defaults follow what Kafka Streams users expect: exactly-once with a 100 ms commit
interval (``commit.interval.ms`` under EOS), at most 500 records per poll
(``max.poll.records``), no standby replicas unless asked for. Everything here is local to
one instance, so different instances of one app may differ in ``listen`` and
``advertise`` addresses and in ``instance_id``, and in nothing else that matters.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from swimstream.config.values import (
    DEFAULT_DOC,
    Boolean,
    Duration,
    FrozenModel,
    Integer,
    MeshListenAddress,
    Name,
    PeerAddress,
    WebListenAddress,
)
from swimstream.errors import ConfigError


class ProcessingConfig(FrozenModel):
    """Delivery guarantee, checkpoints, back-pressure and passivation.

    ``processing: at-least-once`` is shorthand for ``processing: {guarantee: at-least-once}``.
    """

    guarantee: Literal["exactly-once", "at-least-once"] = Field(
        default="exactly-once",
        description=(
            "`exactly-once`: each checkpoint is one Kafka transaction holding changelog "
            "records, insights and source offsets; `at-least-once`: insights may repeat after "
            "a failure, and state stays exact when it is durable and its sources are Kafka's "
            "(state in memory, or fed by Pulsar, counts a redelivered record again). Pulsar "
            "supports only `at-least-once`: in an "
            "app without Kafka, `exactly-once` given explicitly is refused, and the default "
            "runs at-least-once. Exactly-once also needs `store.durable` (the same rule: "
            "refused when explicit, at-least-once by default)."
        ),
    )
    commit_interval: Duration = Field(
        default=0.1,
        gt=0,
        description=(
            "Longest time from a change to the checkpoint that holds it (Kafka Streams' "
            "`commit.interval.ms`); an instance with nothing new takes none."
        ),
    )
    commit_max_records: Integer = Field(
        default=1000,
        ge=1,
        description=(
            "With `store.durable: false`, source offsets are also committed after this many "
            "records; checkpoints (durable state) are timed by `commit_interval` alone."
        ),
    )
    max_poll_records: Integer = Field(
        default=500,
        ge=1,
        description="Most records taken from the sources in one poll.",
    )
    mailbox_capacity: Integer = Field(
        default=1000,
        ge=1,
        description=(
            "Events an agent's mailbox holds; when one is full, the sources feeding it pause "
            "their partitions until it drains (end-to-end back-pressure)."
        ),
    )
    idle_timeout: Duration = Field(
        default=300.0,
        gt=0,
        description=(
            "An agent idle this long is passivated: its state stays in the store, its object "
            "is dropped, and it comes back on its next use."
        ),
    )
    max_active_agents: Integer = Field(
        default=100_000,
        ge=1,
        description=(
            "Most agents in memory per instance; beyond it the least recently used idle "
            "agents are passivated first."
        ),
    )
    drain_timeout: Duration = Field(
        default=8.0,
        gt=0,
        description=(
            "On SIGTERM, how long to finish work in flight and checkpoint before exiting. "
            "The default fits inside `docker stop`'s 10 s grace period; records still in "
            "flight at the deadline are consumed again after the restart."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"guarantee": data}
        return data


class MeshConfig(FrozenModel):
    """How this instance reaches the others (gRPC). Not built yet: only
    `mesh.instance_id` is used today (store file, transactional id, static membership);
    the other keys are checked and kept for the mesh, and nothing listens on
    `mesh.listen`; `run` warns at start about each one set to another value than its
    default.
    """

    listen: MeshListenAddress = Field(
        default="0.0.0.0:7001",
        description="Address the mesh gRPC server binds to; port 0 picks a free port.",
    )
    advertise: PeerAddress | None = Field(
        default=None,
        json_schema_extra={DEFAULT_DOC: "`listen`, with the host name"},
        description=(
            "Address other instances dial to reach this one. Defaults to `listen` with this "
            "host's name in place of an unspecified host such as `0.0.0.0`."
        ),
    )
    members: tuple[PeerAddress, ...] = Field(
        default=(),
        description=(
            "Static list of every instance's mesh address. For the mesh (not built yet): "
            "without Kafka, shard owners are to be chosen by rendezvous hashing over the "
            "live members; with Kafka the consumer group decides and this may stay empty."
        ),
    )
    instance_id: Name | None = Field(
        default=None,
        json_schema_extra={DEFAULT_DOC: "`<app>-<host name>`"},
        description=(
            "Stable identity of this instance, kept across restarts: its store file, its "
            "transactional id and (see `broker.static_membership`) the Kafka static "
            "membership `group.instance.id`, so a restarted instance gets its shards back "
            "without a rebalance. Defaults to the app's name and the host name "
            "(`towers-host1`)."
        ),
    )
    heartbeat_interval: Duration = Field(
        default=1.0, gt=0, description="Time between heartbeats to each peer (the mesh)."
    )
    peer_timeout: Duration = Field(
        default=5.0,
        gt=0,
        description=(
            "For the mesh: a peer silent this long is unreachable, and replicas it fed are "
            "marked stale."
        ),
    )

    @model_validator(mode="after")
    def _check_timing_and_members(self) -> MeshConfig:
        problems: list[tuple[str, str]] = []
        if self.peer_timeout <= self.heartbeat_interval:
            problems.append(("peer_timeout", "must be longer than heartbeat_interval"))
        seen: set[str] = set()
        for index, member in enumerate(self.members):
            if member in seen:
                problems.append((f"members[{index}]", f"{member} is listed twice"))
            seen.add(member)
        if problems:
            raise ConfigError(problems=problems)
        return self


class StoreConfig(FrozenModel):
    """Where agent state is kept on this instance."""

    durable: Boolean = Field(
        default=True,
        description=(
            "Keep agent state durable: every checkpoint writes what changed to the "
            "`<app>.changelog` topic (compacted, one partition per shard) and to a local "
            "SQLite file. `false` keeps state in memory only (lost on restart; offsets are "
            "then committed at-least-once). Needs a Kafka broker for the changelog: in an app "
            "without Kafka, `true` given explicitly is refused, and the default keeps state "
            "in memory with a warning."
        ),
    )
    path: str = Field(
        default="./data",
        min_length=1,
        description=(
            "Directory of the local SQLite store (`<instance id>.sqlite`). Losing it costs "
            "only a longer restore from the changelog topic."
        ),
    )
    standby: Integer = Field(
        default=0,
        ge=0,
        description=(
            "Standby replicas per shard: instances that tail the changelog of shards they do "
            "not own, so a failover replays only their lag (Kafka Streams' "
            "`num.standby.replicas`). Not built yet: checked, then ignored (with a warning at "
            "start when set)."
        ),
    )


class WebConfig(FrozenModel):
    """The web server: lanes over HTTP (and SSE streams), the dashboard, metrics, health."""

    listen: WebListenAddress = Field(
        default="0.0.0.0:9001",
        description=(
            "Address the web server binds to: `GET`/`POST` lanes, lane streams (SSE), the "
            "dashboard, `/metrics`, `/healthz`, `/readyz`; port 0 picks a free port. (WARP "
            "over WebSocket is not served yet.)"
        ),
    )
    command_timeout: Duration = Field(
        default=30.0,
        gt=0,
        description=(
            "How long a `POST` waits for its command's callback: 200 when it finished, 422 "
            "if it raised; still running then, the command stays queued and the answer is "
            "202 `queued` (do not resend it)."
        ),
    )
    max_body_size: Integer = Field(
        default=1 << 20,
        ge=1,
        description="Largest `POST` body, in bytes; a larger one is answered 413.",
    )
    stream_interval: Duration = Field(
        default=0.05,
        gt=0,
        description=(
            "A lane stream (SSE) sends what changed at most once per interval, the newest "
            "value (or newest op per map key) of each: longer costs a browser fewer events."
        ),
    )
    heartbeat_interval: Duration = Field(
        default=15.0,
        gt=0,
        description=(
            "An idle lane stream sends a comment line this often, so proxies keep it open "
            "and a client that left without closing is found; a stream whose client took "
            "nothing for twice as long (it stopped reading) is dropped, and so is an "
            "answer of which it took nothing, or a command's body not sent in full, in "
            "that time (a client that reads all along, however slowly, gets all of a big "
            "lane); so is "
            "a connection whose request head (request line and headers) has not come "
            "whole in that time from its start or its previous answer (a slow or silent "
            "client, or an idle keep-alive connection)."
        ),
    )
    max_streams: Integer = Field(
        default=1000,
        ge=1,
        description=(
            "Most lane streams (SSE) open at once on this instance, a lane linked on a "
            "multiplexed stream (`/_streams`) counting as one; each holds a buffer and costs "
            "the agent it watches a delivery per change. Beyond it a new stream, or link, "
            "is answered 503 with `Retry-After: 5` until one closes "
            "(`swimstream_web_streams_open` in `/metrics` counts them). It also bounds the "
            "multiplexed streams open."
        ),
    )
