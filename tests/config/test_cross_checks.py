"""Checks that need several parts of the configuration at once."""

from typing import Any

import pytest

from swimstream.config import parse_config
from tests.config.documents import document, problems


def source(route: str, **fields: Any) -> dict[str, Any]:
    return {"topic": "positions", "route": route, "lane": "position", **fields}


@pytest.mark.parametrize(
    "route",
    [
        "/vehicle/{key}",
        "/vehicle/{payload.vehicle_id}",
        "/vehicle/v-{payload.a.b}",
        "/vehicle/{header.region}-{key}",
        "/tower/{partition}",
    ],
)
def test_a_source_route_reaching_an_agent_is_accepted(route: str) -> None:
    parse_config(document(sources=[source(route)]), {})


@pytest.mark.parametrize(
    "route",
    [
        "/vehicles/{key}",  # no such fixed segment
        "/vehicle/{key}/x",  # one segment too many
        "/{payload.kind}/{key}",  # a placeholder where every route has fixed text
    ],
)
def test_a_source_route_reaching_no_agent_is_refused(route: str) -> None:
    assert problems(document(sources=[source(route)])) == [
        f"sources[0].route: {route} reaches no agent route (/vehicle/:id, /tower/:id)"
    ]


@pytest.mark.parametrize(("written", "spelled"), [("a+b", "a%2Bb"), (".", "%2E")])
def test_fixed_text_filling_a_param_must_be_spelled_as_the_agents_are(
    written: str, spelled: str
) -> None:
    """Records would go to ``/any/a%2Bb/7`` under the name ``/any/a+b/7``: a source
    waiting for room in that agent's full mailbox found no agent of that name."""
    agents = {"any": {"class": "a:B", "route": "/any/:kind/:id"}}
    route = f"/any/{written}/{{key}}"
    assert problems(document(agents=agents, sinks=[], sources=[source(route)])) == [
        f"sources[0].route: {written!r} fills a param of /any/:kind/:id, whose agents "
        f"spell it {spelled!r} (fixed route text cannot): there, use letters, digits and "
        "-._~ only"
    ]
    parse_config(document(agents=agents, sinks=[], sources=[source("/any/a-b/{key}")]), {})


def test_a_placeholder_may_fill_the_first_segment_when_a_route_has_a_param_there() -> None:
    agents = {"any": {"class": "a:B", "route": "/:kind/:id"}}
    parse_config(document(agents=agents, sinks=[], sources=[source("/{payload.kind}/{key}")]), {})


@pytest.mark.parametrize(
    ("route", "field"),
    [("/vehicle/{payload.id}", "{payload.id}"), ("/vehicle/{key}-{payload.a.b}", "{payload.a.b}")],
)
def test_a_raw_source_whose_route_reads_a_payload_field_is_refused(route: str, field: str) -> None:
    """A raw payload is bytes: every record would have gone to the dead-letter topic."""
    assert problems(document(sources=[source(route, format="raw")])) == [
        f"sources[0].route: {field} reads a payload field, but format raw gives the payload "
        "as bytes, which have no fields; use format json, or {key}, {header.<name>} or the "
        "whole {payload}"
    ]


@pytest.mark.parametrize("route", ["/vehicle/{key}", "/vehicle/{payload}", "/vehicle/{header.id}"])
def test_a_raw_source_may_route_by_key_header_or_whole_payload(route: str) -> None:
    parse_config(document(sources=[source(route, format="raw")]), {})


def test_agents_whose_routes_overlap_are_refused() -> None:
    agents = {
        "vehicle": {"class": "a:B", "route": "/vehicle/:id"},
        "car": {"class": "a:C", "route": "/vehicle/:car"},
    }
    assert problems(document(agents=agents)) == [
        "agents.car.route: matches the same URIs as agents.vehicle.route"
    ]


def test_agents_with_dotted_names_are_named_by_their_key_paths() -> None:
    agents = {
        "fleet.vehicle": {"class": "a:B", "route": "/vehicle/:id"},
        "fleet.car": {"class": "a:C", "route": "/vehicle/:car"},
    }
    sinks = [{"from": "/vehicle/:vid#alerts", "topic": "t"}]
    assert problems(document(agents=agents, sources=[], sinks=sinks)) == [
        "agents['fleet.car'].route: matches the same URIs as agents['fleet.vehicle'].route",
        "sinks[0].from: write the route as agents['fleet.vehicle'] does: /vehicle/:id",
    ]


@pytest.mark.parametrize(
    "route",
    [
        "/dashboard",
        "/metrics",
        "/healthz",
        "/readyz",
        "/_routes",
        "/_agents",
        "/_stats",
        "/_streams",
    ],
)
def test_a_static_agent_route_on_one_of_the_web_servers_own_paths_is_refused(route: str) -> None:
    """The web server answers these paths itself: the agent's lanes would be unreachable."""
    agents = {"page": {"class": "a:B", "route": route}}
    assert problems(document(agents=agents, sources=[], sinks=[])) == [
        f"agents.page.route: {route} is one of the web server's own paths (/, /dashboard, "
        "/_routes, /_agents, /_stats, /_streams, /healthz, /readyz, /metrics); HTTP requests "
        "for it would never reach this agent's lanes"
    ]


@pytest.mark.parametrize("route", ["/metrics/:id", "/dashboard/main", "/:page", "/Metrics"])
def test_agent_routes_below_or_beside_the_web_servers_own_paths_are_accepted(route: str) -> None:
    agents = {"page": {"class": "a:B", "route": route}}
    parse_config(document(agents=agents, sources=[], sinks=[]), {})


def test_repeated_sources_are_refused() -> None:
    assert problems(document(sources=[source("/vehicle/{key}")] * 2)) == [
        "sources[1]: repeats sources[0] (same topic, route, lane)"
    ]


def test_sources_of_one_protocol_that_start_differently_are_refused() -> None:
    """One consumer reads every Kafka source topic, with one ``auto.offset.reset``: the
    second source's ``latest`` was ignored without a word."""
    sources = [
        {**source("/vehicle/{key}"), "topic": "positions"},
        {**source("/vehicle/{key}"), "topic": "speeds", "offset_reset": "latest"},
        {**source("/vehicle/{key}"), "topic": "events", "kind": "pulsar", "offset_reset": "latest"},
    ]
    broker = {"kind": "kafka", "bootstrap": "localhost:9092", "service_url": "pulsar://p:6650"}
    assert problems(document(sources=sources, broker=broker)) == [
        "sources[1].offset_reset: 'latest' differs from sources[0]'s 'earliest': one consumer "
        "reads every kafka source topic, so they start alike (set the same value on each)"
    ]  # (the Pulsar source has a consumer of its own: its 'latest' is fine)
    sources[0]["offset_reset"] = "latest"
    assert len(parse_config(document(sources=sources, broker=broker), {}).sources) == 3


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "roundrobin"])
def test_an_assignor_that_splits_shards_between_instances_is_refused(strategy: str) -> None:
    """Partition p of every source topic feeds shard p, whose durable state one instance
    writes: an assignor other than range hands those partitions to different members."""
    sources = [
        {**source("/vehicle/{key}"), "topic": "positions"},
        {**source("/vehicle/{key}"), "topic": "speeds"},
    ]
    broker = {
        "kind": "kafka",
        "bootstrap": "localhost:9092",
        "settings": {"partition.assignment.strategy": strategy},
    }
    assert problems(document(sources=sources, broker=broker)) == [
        f"broker.settings['partition.assignment.strategy']: {strategy!r} may give partition "
        "p of two source topics to different instances, which would both write shard p's "
        "state; with durable state and 2 Kafka source topics only 'range' (the default) "
        "keeps them together"
    ]
    # One source topic, or state in memory: no shard to split.
    assert parse_config(document(sources=sources[:1], broker=broker), {})
    in_memory = document(sources=sources, broker=broker, store={"durable": False})
    assert parse_config(in_memory, {})


def test_one_topic_may_feed_two_agent_types() -> None:
    sources = [source("/vehicle/{key}"), source("/tower/{payload.tower}", lane="attach")]
    assert len(parse_config(document(sources=sources), {}).sources) == 2


@pytest.mark.parametrize(
    ("sinks", "lines"),
    [
        (
            [{"from": "/car/:id#alerts", "topic": "t"}],
            ["sinks[0].from: no agent has the route /car/:id (/vehicle/:id, /tower/:id)"],
        ),
        (
            [{"from": "/vehicle/:vid#alerts", "topic": "t"}],
            ["sinks[0].from: write the route as agents.vehicle does: /vehicle/:id"],
        ),
        (
            [{"from": "/vehicle/:id#alerts", "topic": "t"}] * 2,
            ["sinks[1]: repeats sinks[0]"],
        ),
        (
            [{"topic": "alerts"}, {"publish": "alerts", "topic": "other"}],
            ["sinks[1].publish: 'alerts' is already declared by sinks[0]"],
        ),
    ],
)
def test_sinks_must_name_an_agent_route_and_unique_names(
    sinks: list[dict[str, Any]], lines: list[str]
) -> None:
    assert problems(document(sinks=sinks)) == lines


def test_a_topic_on_the_other_protocol_needs_its_address() -> None:
    sources = [source("/vehicle/{key}", kind="pulsar", topic="persistent://public/default/p")]
    assert problems(document(sources=sources)) == [
        "sources[0].kind: a pulsar topic needs broker.service_url"
    ]
    broker = {"bootstrap": "k:9092", "service_url": "pulsar://p:6650"}
    parse_config(document(broker=broker, sources=sources), {})


def test_one_topic_name_is_not_read_from_both_kafka_and_pulsar() -> None:
    """Records are routed, and positions checkpointed, by topic name and partition: a
    Pulsar source named like a Kafka one fed the Kafka routes, and its positions were
    committed to Kafka as offsets (Kafka records skipped at the next start)."""
    broker = {"bootstrap": "k:9092", "service_url": "pulsar://p:6650"}
    both = [source("/vehicle/{key}", topic="ev"), source("/tower/{key}", topic="ev", kind="pulsar")]
    assert problems(document(broker=broker, sources=both)) == [
        "sources[1].topic: ev is also the kafka topic of sources[0]; one app cannot read a "
        "topic name from both Kafka and Pulsar (records and positions are kept by topic "
        "name): give the Pulsar one its full name, persistent://public/default/ev"
    ]
    both[1]["topic"] = "persistent://public/default/ev"
    parse_config(document(broker=broker, sources=both), {})
    two_routes = [source("/vehicle/{key}", topic="ev"), source("/tower/{key}", topic="ev")]
    parse_config(document(broker=broker, sources=two_routes), {})


def test_the_embedded_broker_serves_its_own_protocol() -> None:
    config = parse_config(document(broker={"kind": "embedded"}), {})
    assert config.broker.protocol == "kafka"
    pulsar = {"kind": "embedded", "embedded_kind": "pulsar"}
    assert parse_config(document(broker=pulsar), {}).broker.protocol == "pulsar"
    kafka_source = [source("/vehicle/{key}", kind="kafka")]
    assert problems(document(broker=pulsar, sources=kafka_source)) == [
        "sources[0].kind: a kafka topic needs broker.bootstrap"
    ]


def test_kafka_topic_names_are_checked() -> None:
    sources = [source("/vehicle/{key}", topic="a:b")]
    assert problems(document(sources=sources)) == [
        "sources[0].topic: 'a:b' is not a valid Kafka topic name"
    ]


PULSAR = {"kind": "pulsar", "service_url": "pulsar://localhost:6650"}


# What pulsar-client 3.13 refuses with InvalidTopicName before asking the broker (tried
# one by one): `check` passed them, and `run` stopped at the first insight, every start.
@pytest.mark.parametrize(
    "topic",
    [
        "a/b",
        "a/b/c/d",
        "public/default/x/y",
        "persistent://no-namespace",
        "persistent://a/b",
        "persistent://public/default/",
        "persistent://public//x",
        "foo://public/default/x",
        "persistent:/a/b/c",
        "/x",
        "x/",
        "a//c",
    ],
)
def test_pulsar_topic_names_are_checked(topic: str) -> None:
    expected = (
        f"{topic!r} is not a valid Pulsar topic name: name, tenant/namespace/name or "
        "persistent://tenant/namespace/name (or non-persistent://)"
    )
    sinks = [{"publish": "alerts", "topic": topic}]
    assert problems(document(broker=PULSAR, sinks=sinks)) == [f"sinks[0].topic: {expected}"]
    assert problems(document(broker=PULSAR, sources=[source("/vehicle/{key}", topic=topic)])) == [
        f"sources[0].topic: {expected}"
    ]
    assert problems(document(broker=PULSAR, dead_letter=topic)) == [f"dead_letter: {expected}"]


@pytest.mark.parametrize(
    "topic",
    [
        "x",
        "x:y",
        "a/b/c",
        "persistent://public/default/x",
        "persistent://public/default/x/y",  # (the old form, with a cluster)
        "non-persistent://public/default/np",
        "public/default/x-partition-3",
    ],
)
def test_pulsar_topic_names_the_client_takes_are_accepted(topic: str) -> None:
    sinks = [{"publish": "alerts", "topic": topic}]
    parse_config(document(broker=PULSAR, sinks=sinks, dead_letter=topic + "-dead"), {})


def test_the_dead_letter_topic_must_not_be_a_source() -> None:
    assert problems(document(dead_letter="vehicle-positions")) == [
        "dead_letter: is also the topic of sources[0]; bad records would loop"
    ]


@pytest.mark.parametrize(
    "broker",
    [
        {"kind": "kafka", "bootstrap": "localhost:9092"},
        {"kind": "embedded"},
    ],
)
def test_the_dead_letter_topic_must_not_be_the_changelog_topic(broker: dict[str, Any]) -> None:
    """Failed records in the changelog would be read back as agent state, and their keys
    are no node URIs: every later start would fail its recovery."""
    assert problems(document(broker=broker, dead_letter="traffic.changelog")) == [
        "dead_letter: traffic.changelog is swimstream's changelog topic; failed records "
        "written there would break the restore of agent state at the next start"
    ]


def test_a_dead_letter_topic_on_pulsar_named_like_the_changelog_is_another_topic() -> None:
    broker = {"kind": "pulsar", "service_url": "pulsar://p:6650"}
    parse_config(document(broker=broker, dead_letter="traffic.changelog"), {})


def test_a_source_must_not_read_the_changelog_topic() -> None:
    sources = [source("/vehicle/{key}", topic="traffic.changelog")]
    assert problems(document(sources=sources)) == [
        "sources[0].topic: traffic.changelog is swimstream's changelog topic; it holds agent "
        "state, not commands"
    ]


@pytest.mark.parametrize(
    "sink",
    [
        {"publish": "out", "topic": "traffic.changelog"},
        {"from": "/vehicle/:id#alerts", "topic": "traffic.changelog"},
    ],
)
def test_a_sink_must_not_write_to_the_changelog_topic(sink: dict[str, Any]) -> None:
    assert problems(document(sinks=[sink])) == [
        "sinks[0].topic: traffic.changelog is swimstream's changelog topic; records written "
        "there would break the restore of agent state at the next start"
    ]


@pytest.mark.parametrize(
    ("parts", "topic"),
    [
        ({}, "traffic.dead-letter"),
        ({"dead_letter": "bad-records"}, "bad-records"),
    ],
)
def test_a_sink_must_not_write_to_the_dead_letter_topic(parts: dict[str, Any], topic: str) -> None:
    sinks = [{"from": "/vehicle/:id#alerts", "topic": "alerts"}, {"topic": topic}]
    assert problems(document(sinks=sinks, **parts)) == [
        f"sinks[1].topic: {topic} is swimstream's dead-letter topic (dead_letter); records "
        "written there would pass for failed ones"
    ]


def test_a_pulsar_topic_is_compared_by_its_full_name() -> None:
    broker = {"kind": "pulsar", "service_url": "pulsar://p:6650"}
    sinks = [{"topic": "persistent://public/default/traffic.dead-letter"}]
    assert problems(document(broker=broker, sinks=sinks)) == [
        "sinks[0].topic: persistent://public/default/traffic.dead-letter is swimstream's "
        "dead-letter topic (dead_letter); records written there would pass for failed ones"
    ]


def test_own_topic_names_on_another_protocol_are_other_topics() -> None:
    broker = {"bootstrap": "k:9092", "service_url": "pulsar://p:6650"}
    sinks = [
        {"topic": "traffic.changelog", "kind": "pulsar"},
        {"topic": "traffic.dead-letter", "kind": "pulsar"},
    ]
    parse_config(document(broker=broker, sinks=sinks), {})


def test_a_sink_may_feed_a_source_topic_back() -> None:
    sinks = [{"publish": "again", "topic": "vehicle-positions"}]
    parse_config(document(sinks=sinks), {})


def test_ports_may_both_be_zero_but_not_the_same() -> None:
    parse_config(document(mesh={"listen": "127.0.0.1:0"}, web={"listen": "127.0.0.1:0"}), {})
    assert problems(document(mesh={"listen": "[::1]:9001"})) == [
        "web.listen: uses port 9001, as mesh.listen does"
    ]


PULSAR_BROKERS = [
    {"kind": "pulsar", "service_url": "pulsar://p:6650"},
    {"kind": "embedded", "embedded_kind": "pulsar"},
]


@pytest.mark.parametrize("broker", PULSAR_BROKERS)
@pytest.mark.parametrize(
    ("parts", "lines"),
    [
        (
            {"store": {"durable": True}},
            [
                "store.durable: durable state needs a Kafka broker (the changelog is a Kafka "
                "topic) and this app uses only Pulsar; set it to false to keep state in memory"
            ],
        ),
        (
            {"processing": "exactly-once", "store": {"durable": False}},
            [
                "processing.guarantee: exactly-once needs a Kafka broker (Kafka transactions) "
                "and this app uses only Pulsar, which runs at-least-once"
            ],
        ),
        (
            {"processing": {"guarantee": "exactly-once"}, "store": {"durable": True}},
            [
                "store.durable: durable state needs a Kafka broker (the changelog is a Kafka "
                "topic) and this app uses only Pulsar; set it to false to keep state in memory",
                "processing.guarantee: exactly-once needs a Kafka broker (Kafka transactions) "
                "and this app uses only Pulsar, which runs at-least-once",
            ],
        ),
    ],
)
def test_durable_state_or_exactly_once_asked_for_without_kafka_is_refused(
    broker: dict[str, Any], parts: dict[str, Any], lines: list[str]
) -> None:
    assert problems(document(broker=broker, **parts)) == lines


@pytest.mark.parametrize("broker", PULSAR_BROKERS)
def test_kafka_client_settings_in_an_app_without_kafka_are_refused(
    broker: dict[str, Any],
) -> None:
    """No Kafka client is made to take them: SASL settings left from a Kafka setup were
    dropped without a word, and the app ran without the login they asked for."""
    settings = {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    assert problems(document(broker={**broker, "settings": settings})) == [
        "broker.settings: no Kafka client takes these: this app uses only Pulsar, whose "
        "clients take broker.pulsar"
    ]


def test_pulsar_client_settings_in_an_app_without_pulsar_are_refused() -> None:
    broker = {
        "kind": "kafka",
        "bootstrap": "k:9092",
        "pulsar": {"authentication": {"token": "t"}},
    }
    assert problems(document(broker=broker)) == [
        "broker.pulsar: no Pulsar client takes these: this app uses only Kafka, whose "
        "clients take broker.settings"
    ]


@pytest.mark.parametrize("broker", PULSAR_BROKERS)
def test_without_kafka_the_defaults_and_at_least_once_in_memory_are_accepted(
    broker: dict[str, Any],
) -> None:
    config = parse_config(document(broker=broker), {})
    assert config.store.durable and config.processing.guarantee == "exactly-once"  # warned at run
    parse_config(document(broker=broker, processing="at-least-once", store={"durable": False}), {})


def test_exactly_once_asked_for_without_durable_state_is_refused() -> None:
    """(It ran at-least-once without a word: offsets commit in the changelog's
    transaction, and without durable state there is none.)"""
    parts = {"processing": "exactly-once", "store": {"durable": False}}
    assert problems(document(**parts)) == [
        "processing.guarantee: exactly-once needs durable state (each checkpoint's "
        "transaction commits the offsets with the changelog) and store.durable is false; "
        "use at-least-once"
    ]
    parse_config(document(store={"durable": False}), {})  # the default guarantee: accepted


def test_a_kafka_topic_beside_pulsar_allows_durable_state_and_exactly_once() -> None:
    broker = {"kind": "pulsar", "service_url": "pulsar://p:6650", "bootstrap": "k:9092"}
    sinks = [{"from": "/vehicle/:id#alerts", "topic": "alerts", "kind": "kafka"}]
    parts = {"processing": "exactly-once", "store": {"durable": True}}
    assert parse_config(document(broker=broker, sinks=sinks, **parts), {}).protocols == {
        "pulsar",
        "kafka",
    }


@pytest.mark.parametrize("limit", [100_000, "65536", 1000])
def test_a_producer_limit_that_leaves_no_room_for_records_is_refused(limit: object) -> None:
    """swimstream keeps 64 KiB of each record for keys, headers and encoding: below twice
    that, every record from a source (nearly every, just above it) would be dead-lettered
    as too large."""
    broker = {
        "kind": "kafka",
        "bootstrap": "localhost:9092",
        "settings": {"message.max.bytes": limit},
    }
    assert problems(document(broker=broker)) == [
        "broker.settings['message.max.bytes']: at least 131072 bytes: swimstream keeps 65536 "
        "of each record for keys, headers and encoding, and refuses any larger record from "
        "a source at the door"
    ]


@pytest.mark.parametrize("limit", [131_072, "1000000", " 2000000 "])
def test_a_producer_limit_with_room_for_records_is_taken(limit: object) -> None:
    broker = {
        "kind": "kafka",
        "bootstrap": "localhost:9092",
        "settings": {"message.max.bytes": limit},
    }
    assert parse_config(document(broker=broker), {}).broker.settings["message.max.bytes"] == limit
