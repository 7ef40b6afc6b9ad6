"""The ``agents``, ``sources`` and ``sinks`` parts: what runs, and what flows in and out.

An agent entry names a class and the route pattern of its node URIs. A source says which
topic feeds which command lane, and how a record names its agent (a route template).
A sink either streams every change of one lane of an agent type to a topic (``from``),
or names a topic the agents write to with ``self.publish(name, value)`` (``publish``).

Each model checks what it can see on its own; whether a route reaches an agent, or a
sink names an existing one, is checked by the app part, which sees them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, PlainValidator, model_validator

from swimstream.config.broker import Protocol
from swimstream.config.values import (
    ClassPath,
    Duration,
    FrozenModel,
    LaneName,
    RoutePatternField,
    RouteTemplateField,
    TopicName,
    TypeDoc,
)
from swimstream.errors import ConfigError
from swimstream.routing import RoutePattern, ServerPath
from swimstream.routing.reserved import server_path_list

RecordFormat = Literal["json", "raw"]


@dataclass(frozen=True)
class LaneRef:
    """One lane of every agent a route pattern names: ``/vehicle/:id#alerts``."""

    route: RoutePattern
    lane: str

    def __str__(self) -> str:
        return f"{self.route}#{self.lane}"

    @classmethod
    def parse(cls, text: str) -> LaneRef:
        """Parse ``<route pattern>#<lane>``; raise ``ValueError`` saying what is wrong."""
        route, hash_sign, lane = text.rpartition("#")
        if not hash_sign or not route:
            raise ValueError(f"expected <route>#<lane>, such as /vehicle/:id#alerts, got {text!r}")
        if not (lane.isidentifier() and lane.isascii()):
            raise ValueError(f"lane name {lane!r} is not an identifier")
        return cls(RoutePattern.parse(route), lane)


def _parse_lane_ref(value: Any) -> LaneRef:
    if isinstance(value, LaneRef):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected <route>#<lane>, such as /vehicle/:id#alerts, got {value!r}")
    return LaneRef.parse(str(value))  # (a plain str, also when it was substituted)


LaneRefField = Annotated[
    LaneRef,
    PlainValidator(_parse_lane_ref),
    PlainSerializer(str, return_type=str),
    TypeDoc("`<route pattern>#<lane>`"),
]


class AgentConfig(FrozenModel):
    """One agent type: its class and the node URIs it answers to."""

    class_path: ClassPath = Field(
        alias="class",
        description=(
            "The agent class as `module:Class`, imported from the service's working "
            "directory and `PYTHONPATH`: a subclass of `swimstream.Agent` (`check` refuses "
            "any other class, and `Agent` itself)."
        ),
    )
    route: RoutePatternField = Field(
        description=(
            "Route pattern of the agents' node URIs: fixed segments and `:param` segments, "
            "such as `/vehicle/:id`. An agent is created on first use of a matching URI. "
            "A route without params may not be one of the web server's own paths "
            f"({server_path_list()}): its lanes could not be reached over HTTP."
        ),
    )

    @model_validator(mode="after")
    def _check_route_is_reachable(self) -> AgentConfig:
        """The web server matches its own paths before node URIs (see ``ServerPath``)."""
        if self.route.is_static and self.route.text in _SERVER_PATHS:
            message = (
                f"{self.route} is one of the web server's own paths "
                f"({', '.join(_SERVER_PATHS)}); HTTP requests for it would never reach this "
                "agent's lanes"
            )
            raise ConfigError(problems=[("route", message)])
        return self


_SERVER_PATHS = tuple(path.value for path in ServerPath)


class SourceConfig(FrozenModel):
    """A topic whose records become commands to agents."""

    topic: TopicName = Field(description="The topic to consume, in the app's consumer group.")
    route: RouteTemplateField = Field(
        description=(
            "How a record names its agent: a node URI with placeholders `{key}`, "
            "`{payload.<field>[.<field>...]}`, `{header.<name>}` (a header the record "
            "carries twice: its last value, as Kafka's `lastHeader`), `{topic}`, "
            "`{partition}` (or `{payload}` for a scalar payload). Records that cannot be "
            "routed go to the dead-letter topic with the reason."
        ),
    )
    lane: LaneName = Field(description="The command lane of the agent that receives each record.")
    format: RecordFormat = Field(
        default="json",
        description=(
            "`json`: the value is decoded as JSON (undecodable records are dead-lettered); "
            "`raw`: the command is the value's bytes, so `route` cannot read a "
            "`{payload.<field>}` (the whole `{payload}`, as UTF-8 text, it can)."
        ),
    )
    kind: Protocol | None = Field(
        default=None,
        description=(
            "`kafka` or `pulsar`, when the topic is not on `broker`'s own protocol. One "
            "topic name is read from one protocol only: a Pulsar topic named like a Kafka "
            "source takes its full name (`persistent://public/default/<name>`)."
        ),
    )
    offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest",
        description=(
            "Where to start when the consumer group has no committed offset yet: the "
            "oldest record or only new ones. One consumer reads every source topic of a "
            "protocol, so their sources must agree (`check` names one that does not)."
        ),
    )

    @model_validator(mode="after")
    def _check_route_reads_the_format(self) -> SourceConfig:
        """A raw payload is bytes, with no fields: a route reading one would send every
        record to the dead-letter topic."""
        if self.format == "raw":
            fields = [p for p in self.route.placeholders if p.root == "payload" and p.path]
            if fields:
                message = (
                    f"{fields[0]} reads a payload field, but format raw gives the payload as "
                    "bytes, which have no fields; use format json, or {key}, {header.<name>} "
                    "or the whole {payload}"
                )
                raise ConfigError(problems=[("route", message)])
        return self


class SinkConfig(FrozenModel):
    """A topic that receives agents' insights."""

    from_: LaneRefField | None = Field(
        default=None,
        alias="from",
        description=(
            "A lane sink: every change of this lane of every agent of this route "
            "(`/vehicle/:id#alerts`) becomes a record on `topic`. Leave out for a topic "
            "agents write to with `publish()`."
        ),
    )
    publish: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "The name agents pass to `self.publish(name, value)` to write to `topic`. "
            "Defaults to the topic's own name when `from` is not given."
        ),
    )
    topic: TopicName = Field(description="The topic the records are produced to.")
    key: str | None = Field(
        default=None,
        description=(
            "Record key of a lane sink: a param of the `from` route, or `uri` for the whole "
            "node URI. Defaults to the route's only param, else the node URI."
        ),
    )
    format: RecordFormat = Field(
        default="json",
        description=(
            "`json` encodes each value as JSON; `raw` writes bytes, text or a number (as "
            "its text) as it is; any other value fails the callback that wrote it."
        ),
    )
    kind: Protocol | None = Field(
        default=None,
        description="`kafka` or `pulsar`, when the topic is not on `broker`'s own protocol.",
    )
    coalesce: Duration | None = Field(
        default=None,
        description=(
            "A lane sink: produce only the latest change of each agent's lane (of each "
            "key, for a map lane) every this often and at every checkpoint, as Kafka "
            "Streams' record cache does for a table; leave out for a record per change."
        ),
    )

    @property
    def publish_name(self) -> str | None:
        """The name ``self.publish()`` uses for this sink; ``None`` for a lane sink."""
        if self.from_ is not None:
            return None
        return self.publish if self.publish is not None else self.topic

    @property
    def record_key(self) -> str | None:
        """For a lane sink, the param keying its records, or ``"uri"``; else ``None``."""
        if self.from_ is None:
            return None
        if self.key is not None:
            return self.key
        params = self.from_.route.params
        return params[0] if len(params) == 1 else "uri"

    @model_validator(mode="after")
    def _check_kind_of_sink(self) -> SinkConfig:
        problems: list[tuple[str, str]] = []
        if self.from_ is not None and self.publish is not None:
            problems.append(("publish", "give either from (a lane sink) or publish, not both"))
        if self.key is not None:
            if self.from_ is None:
                problems.append(("key", "only lane sinks (with from) take a key"))
            elif self.key != "uri" and self.key not in self.from_.route.params:
                choices = " or ".join((*self.from_.route.params, "uri"))
                problems.append(
                    (
                        "key",
                        f"{self.key!r} is not a param of {self.from_.route}; expected {choices}",
                    )
                )
        if self.coalesce is not None:
            if self.from_ is None:
                problems.append(("coalesce", "only lane sinks (with from) coalesce changes"))
            elif self.coalesce <= 0:
                problems.append(("coalesce", "must be a positive duration, such as 100ms"))
        if problems:
            raise ConfigError(problems=problems)
        return self
