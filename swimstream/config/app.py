"""The whole app configuration, and the checks that need more than one part to see.

``AppConfig`` composes the parts. Its own validator runs after every part has parsed and
checks what connects them: that each source route reaches an agent route (the template is
matched against the patterns with its placeholders standing for themselves, see
:meth:`RouteTemplate.skeleton`), that each lane sink names an agent route, that names are
unique, that the topics fit the protocol they live on and stay off the changelog and
dead-letter topics, that the instance's ports do not collide, and that durable state or
exactly-once are not asked for without Kafka. All problems found are raised together as
one :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from swimstream.config.broker import BrokerConfig, Protocol
from swimstream.config.problems import format_path
from swimstream.config.pulsar_client import PulsarClientConfig
from swimstream.config.service import MeshConfig, ProcessingConfig, StoreConfig, WebConfig
from swimstream.config.topology import AgentConfig, SinkConfig, SourceConfig
from swimstream.config.values import (
    DEFAULT_DOC,
    FrozenModel,
    Name,
    TopicName,
    is_kafka_topic,
    is_name,
    is_pulsar_topic,
    split_address,
)
from swimstream.errors import ConfigError, InvalidRouteError
from swimstream.routing import RouteTable

Problem = tuple[str, str]


class AppConfig(FrozenModel):
    """A swimstream app: one YAML file, every instance of the app runs with it."""

    app: Name = Field(
        description=(
            "Name of the app. It is the Kafka consumer group of the sources and the prefix "
            "of the topics swimstream owns (`<app>.changelog`, `<app>.dead-letter`)."
        ),
    )
    broker: BrokerConfig = Field(description="The broker sources and sinks talk to.")
    agents: dict[Name, AgentConfig] = Field(
        min_length=1,
        description="Agent types by name: `{class: module:Class, route: /vehicle/:id}`.",
    )
    sources: tuple[SourceConfig, ...] = Field(
        default=(), description="Topics whose records become commands to agents."
    )
    sinks: tuple[SinkConfig, ...] = Field(
        default=(), description="Topics that receive agents' insights."
    )
    dead_letter: TopicName = Field(
        default="",
        validate_default=False,
        json_schema_extra={DEFAULT_DOC: "`<app>.dead-letter`"},
        description=(
            "Topic for records that cannot be decoded or routed, with the reason in a "
            "header. Defaults to `<app>.dead-letter`."
        ),
    )
    processing: ProcessingConfig = Field(
        default_factory=ProcessingConfig,
        description=(
            "Delivery guarantee, checkpoints, back-pressure and passivation; "
            "`processing: at-least-once` is short for `{guarantee: at-least-once}`."
        ),
    )
    mesh: MeshConfig = Field(default_factory=MeshConfig, description="The instance mesh (gRPC).")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Local state storage.")
    web: WebConfig = Field(
        default_factory=WebConfig, description="The web server (HTTP lanes, dashboard, probes)."
    )

    @property
    def consumer_group(self) -> str:
        """The Kafka consumer group of the sources: the app name."""
        return self.app

    @property
    def changelog_topic(self) -> str:
        """The topic whose partition p holds shard p's state changes."""
        return self.internal_topic("changelog")

    def internal_topic(self, name: str) -> str:
        """The name of a topic swimstream owns for this app: ``<app>.<name>``."""
        return f"{self.app}.{name}"

    @property
    def protocols(self) -> frozenset[Protocol]:
        """Every protocol a source or sink of the app lives on, and the broker's own."""
        home = self.broker.protocol
        used: set[Protocol] = {home}
        used.update(source.kind or home for source in self.sources)
        used.update(sink.kind or home for sink in self.sinks)
        return frozenset(used)

    def to_document(self) -> dict[str, Any]:
        """The configuration as a YAML/JSON-ready document, with every default filled in.

        Loading the document gives back an equal configuration.
        """
        return self.model_dump(mode="json", by_alias=True)

    def agent_routes(self) -> RouteTable[str]:
        """The agents' route patterns, each registered with its agent's name."""
        return RouteTable((agent.route, name) for name, agent in self.agents.items())

    @model_validator(mode="before")
    @classmethod
    def _default_dead_letter(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "dead_letter" not in data:
            app = data.get("app")
            if isinstance(app, str) and is_name(app):  # else app's own error says it all
                return {**data, "dead_letter": f"{app}.dead-letter"}
        return data

    @model_validator(mode="after")
    def _check_connections(self) -> AppConfig:
        problems: list[Problem] = []
        routes = _check_agent_routes(self, problems)
        _check_sources(self, routes, problems)
        _check_sinks(self, routes, problems)
        _check_topics(self, problems)
        _check_ports(self, problems)
        _check_kafka_only_choices(self, problems)
        _check_clients_take_their_settings(self, problems)
        _check_shard_owners(self, problems)
        if problems:
            raise ConfigError(problems=problems)
        return self


def _check_agent_routes(config: AppConfig, problems: list[Problem]) -> RouteTable[str]:
    routes: RouteTable[str] = RouteTable()
    for name, agent in config.agents.items():
        try:
            routes.add(agent.route, name)
        except InvalidRouteError:
            other = routes.get(agent.route)
            problems.append(
                (
                    format_path(["agents", name, "route"]),
                    f"matches the same URIs as {format_path(['agents', str(other), 'route'])}",
                )
            )
    return routes


def _route_list(routes: RouteTable[str]) -> str:
    return ", ".join(pattern.text for pattern, _ in routes)


def _check_sources(config: AppConfig, routes: RouteTable[str], problems: list[Problem]) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    for index, source in enumerate(config.sources):
        skeleton = source.route.skeleton()
        match = routes.lookup(skeleton)
        if match is None:
            problems.append(
                (
                    f"sources[{index}].route",
                    f"{source.route} reaches no agent route ({_route_list(routes)})",
                )
            )
        else:
            _check_fixed_params(skeleton, match.uri, match.pattern.text, index, problems)
        identity = (source.topic, source.route.text, source.lane)
        if identity in seen:
            problems.append(
                (
                    f"sources[{index}]",
                    f"repeats sources[{seen[identity]}] (same topic, route, lane)",
                )
            )
        seen.setdefault(identity, index)
    _check_offset_resets(config, problems)


def _check_fixed_params(
    skeleton: str, canonical: str, pattern: str, index: int, problems: list[Problem]
) -> None:
    """Refuse fixed template text that fills a param in another spelling than the agent's
    URI has (``/m/a+b/{key}`` for ``/m/:kind/:id`` makes agents ``/m/a%2Bb/...``): the
    router would name each record's agent otherwise than the agent is named, and a source
    waiting for room in its full mailbox would find no such agent and not wait."""
    for written, spelled in zip(skeleton.split("/"), canonical.split("/"), strict=True):
        if "{" not in written and written != spelled:
            problems.append(
                (
                    f"sources[{index}].route",
                    f"{written!r} fills a param of {pattern}, whose agents spell it "
                    f"{spelled!r} (fixed route text cannot): there, use letters, digits "
                    "and -._~ only",
                )
            )


def _check_offset_resets(config: AppConfig, problems: list[Problem]) -> None:
    """One consumer per protocol reads every source topic on it, so they start alike."""
    first: dict[str, int] = {}
    for index, source in enumerate(config.sources):
        protocol = source.kind or config.broker.protocol
        earlier = first.setdefault(protocol, index)
        reset = config.sources[earlier].offset_reset
        if source.offset_reset != reset:
            problems.append(
                (
                    f"sources[{index}].offset_reset",
                    f"{source.offset_reset!r} differs from sources[{earlier}]'s {reset!r}: "
                    f"one consumer reads every {protocol} source topic, so they start alike "
                    "(set the same value on each)",
                )
            )


def _check_sinks(config: AppConfig, routes: RouteTable[str], problems: list[Problem]) -> None:
    publish_names: dict[str, int] = {}
    lane_sinks: dict[tuple[str, str], int] = {}
    for index, sink in enumerate(config.sinks):
        if sink.from_ is not None:
            agent = routes.get(sink.from_.route)
            if agent is None:
                problems.append(
                    (
                        f"sinks[{index}].from",
                        f"no agent has the route {sink.from_.route} ({_route_list(routes)})",
                    )
                )
            elif config.agents[agent].route.text != sink.from_.route.text:
                problems.append(
                    (
                        f"sinks[{index}].from",
                        f"write the route as {format_path(['agents', agent])} does: "
                        f"{config.agents[agent].route}",
                    )
                )
            identity = (str(sink.from_), sink.topic)
            if identity in lane_sinks:
                problems.append((f"sinks[{index}]", f"repeats sinks[{lane_sinks[identity]}]"))
            lane_sinks.setdefault(identity, index)
        name = sink.publish_name
        if name is not None:
            if name in publish_names:
                problems.append(
                    (
                        f"sinks[{index}].publish",
                        f"{name!r} is already declared by sinks[{publish_names[name]}]",
                    )
                )
            publish_names.setdefault(name, index)


def _check_topics(config: AppConfig, problems: list[Problem]) -> None:
    broker = config.broker
    used: list[tuple[str, str, Protocol]] = [
        (f"sources[{i}]", s.topic, s.kind or broker.protocol) for i, s in enumerate(config.sources)
    ]
    used += [
        (f"sinks[{i}]", s.topic, s.kind or broker.protocol) for i, s in enumerate(config.sinks)
    ]
    for path, topic, protocol in used:
        if not broker.serves(protocol):
            address = "broker.bootstrap" if protocol == "kafka" else "broker.service_url"
            problems.append((f"{path}.kind", f"a {protocol} topic needs {address}"))
        if protocol == "kafka" and not is_kafka_topic(topic):
            problems.append((f"{path}.topic", f"{topic!r} is not a valid Kafka topic name"))
        elif protocol == "pulsar" and not is_pulsar_topic(topic):
            problems.append((f"{path}.topic", _not_pulsar_topic(topic)))
    if broker.protocol == "kafka" and not is_kafka_topic(config.dead_letter):
        problems.append(("dead_letter", f"{config.dead_letter!r} is not a valid Kafka topic name"))
    elif broker.protocol == "pulsar" and not is_pulsar_topic(config.dead_letter):
        problems.append(("dead_letter", _not_pulsar_topic(config.dead_letter)))
    _check_own_topics(config, problems)
    _check_one_protocol_per_source_name(config, problems)


def _not_pulsar_topic(topic: str) -> str:
    return (
        f"{topic!r} is not a valid Pulsar topic name: name, tenant/namespace/name or "
        "persistent://tenant/namespace/name (or non-persistent://)"
    )


def _check_one_protocol_per_source_name(config: AppConfig, problems: list[Problem]) -> None:
    """A topic name read from both Kafka and Pulsar would be one topic to swimstream: its
    records are routed, and its positions checkpointed, by name and partition, so each
    broker's records would reach the other's routes and Pulsar's positions would be
    committed to Kafka as offsets, skipping Kafka records at the next start."""
    first: dict[str, tuple[int, str]] = {}
    for index, source in enumerate(config.sources):
        protocol = source.kind or config.broker.protocol
        earlier = first.setdefault(source.topic, (index, protocol))
        if earlier[1] != protocol:
            problems.append(
                (
                    f"sources[{index}].topic",
                    f"{source.topic} is also the {earlier[1]} topic of sources[{earlier[0]}]; "
                    "one app cannot read a topic name from both Kafka and Pulsar (records "
                    "and positions are kept by topic name): give the Pulsar one its full "
                    f"name, persistent://public/default/{source.topic}",
                )
            )


def _check_own_topics(config: AppConfig, problems: list[Problem]) -> None:
    """Sources and sinks must stay off the topics swimstream writes itself.

    A sink writing to the changelog would make the next start fail (recovery reads its
    records as state), one writing to the dead-letter topic would pass insights off as
    failed records, and a source of either would feed swimstream's own records to agents.
    The dead-letter topic must not be the changelog either: recovery would read the
    failed records as state and stop every later start. A sink writing to a source topic
    is allowed: a feedback loop can be the design.
    """
    home = config.broker.protocol
    changelog = _topic_identity("kafka", config.changelog_topic)  # the changelog is Kafka's
    dead_letter = _topic_identity(home, config.dead_letter)  # on the broker's own protocol
    if dead_letter == changelog:
        problems.append(
            (
                "dead_letter",
                f"{config.dead_letter} is swimstream's changelog topic; failed records "
                "written there would break the restore of agent state at the next start",
            )
        )
    uses = [("sources", n, s.topic, s.kind) for n, s in enumerate(config.sources)]
    uses += [("sinks", n, s.topic, s.kind) for n, s in enumerate(config.sinks)]
    for role, index, name, kind in uses:
        topic = _topic_identity(kind or home, name)
        if topic == changelog:
            problems.append((f"{role}[{index}].topic", f"{name} {_ON_CHANGELOG[role]}"))
        elif topic == dead_letter and role == "sources":
            problems.append(
                ("dead_letter", f"is also the topic of sources[{index}]; bad records would loop")
            )
        elif topic == dead_letter:
            problems.append(
                (
                    f"sinks[{index}].topic",
                    f"{name} is swimstream's dead-letter topic (dead_letter); records "
                    "written there would pass for failed ones",
                )
            )


_ON_CHANGELOG = {
    "sources": "is swimstream's changelog topic; it holds agent state, not commands",
    "sinks": "is swimstream's changelog topic; records written there would break the "
    "restore of agent state at the next start",
}


def _topic_identity(protocol: Protocol, topic: str) -> tuple[Protocol, str]:
    """A topic as its broker resolves the name: Pulsar reads ``name`` as
    ``persistent://public/default/name`` and ``tenant/ns/name`` as
    ``persistent://tenant/ns/name``; Kafka names are taken as they are."""
    if protocol == "pulsar" and "://" not in topic:
        topic = "persistent://" + (topic if "/" in topic else f"public/default/{topic}")
    return protocol, topic


def _check_kafka_only_choices(config: AppConfig, problems: list[Problem]) -> None:
    """Durable state and exactly-once need Kafka: refuse them when the user asked for them
    in an app without Kafka. Left at their defaults, the service runs with state in memory,
    at-least-once, and logs a warning saying so. Exactly-once also needs durable state:
    the transaction that commits the sources' offsets is the changelog's."""
    processing = config.processing
    asked_exactly_once = (
        "guarantee" in processing.model_fields_set and processing.guarantee == "exactly-once"
    )
    if "kafka" in config.protocols:
        if asked_exactly_once and not config.store.durable:
            problems.append(
                (
                    "processing.guarantee",
                    "exactly-once needs durable state (each checkpoint's transaction commits "
                    "the offsets with the changelog) and store.durable is false; use "
                    "at-least-once",
                )
            )
        return
    if "durable" in config.store.model_fields_set and config.store.durable:
        problems.append(
            (
                "store.durable",
                "durable state needs a Kafka broker (the changelog is a Kafka topic) and this "
                "app uses only Pulsar; set it to false to keep state in memory",
            )
        )
    if asked_exactly_once:
        problems.append(
            (
                "processing.guarantee",
                "exactly-once needs a Kafka broker (Kafka transactions) and this app uses only "
                "Pulsar, which runs at-least-once",
            )
        )


def _check_clients_take_their_settings(config: AppConfig, problems: list[Problem]) -> None:
    """Client settings for a protocol the app never opens a client of do nothing: the
    login or TLS they ask for would be dropped without a word (as ``broker.pulsar``'s TLS
    keys with a plaintext URL are refused for)."""
    protocols = config.protocols
    if config.broker.settings and "kafka" not in protocols:
        problems.append(
            (
                "broker.settings",
                "no Kafka client takes these: this app uses only Pulsar, whose clients take "
                "broker.pulsar",
            )
        )
    if config.broker.pulsar != PulsarClientConfig() and "pulsar" not in protocols:
        problems.append(
            (
                "broker.pulsar",
                "no Pulsar client takes these: this app uses only Kafka, whose clients take "
                "broker.settings",
            )
        )


def _check_shard_owners(config: AppConfig, problems: list[Problem]) -> None:
    """With durable state, shard p lives in changelog partition p and must have one owner:
    the instance holding partition p of every Kafka source topic. Only the range assignor
    keeps those partitions together; another one (``cooperative-sticky``, ``roundrobin``)
    splits them once there are several source topics, and two instances would write one
    shard's state. (With one source topic any assignor keeps shards whole.)"""
    strategy = str(config.broker.settings.get("partition.assignment.strategy", "range"))
    if strategy.strip() == "range" or not config.store.durable:
        return
    kafka = {s.topic for s in config.sources if (s.kind or config.broker.protocol) == "kafka"}
    if len(kafka) > 1:
        problems.append(
            (
                format_path(["broker", "settings", "partition.assignment.strategy"]),
                f"{strategy!r} may give partition p of two source topics to different "
                "instances, which would both write shard p's state; with durable state and "
                f"{len(kafka)} Kafka source topics only 'range' (the default) keeps them "
                "together",
            )
        )


def _check_ports(config: AppConfig, problems: list[Problem]) -> None:
    _, mesh_port = split_address(config.mesh.listen)
    _, web_port = split_address(config.web.listen)
    if mesh_port == web_port != 0:
        problems.append(("web.listen", f"uses port {web_port}, as mesh.listen does"))
