"""Every problem is reported as ``key path: message``, all of them at once."""

import types
from collections.abc import Iterator
from typing import Annotated, Any, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from swimstream.config import AppConfig, parse_config
from swimstream.config.values import Boolean, Integer
from swimstream.errors import ConfigError
from tests.config.documents import document, problems


@pytest.mark.parametrize(
    ("parts", "line"),
    [
        ({"app": "my app"}, "app: 'my app' must be 1-200 letters, digits, '.', '_' or '-'"),
        (
            {"broker": {"kind": "kafak"}},
            "broker.kind: expected 'kafka', 'pulsar' or 'embedded', got 'kafak'",
        ),
        (
            {"broker": {"kind": "kafka", "bootsrap": "h:1"}},
            "broker.bootsrap: unknown key; did you mean 'bootstrap'?",
        ),
        ({"broker": {"kind": "kafka"}}, "broker.bootstrap: required when kind is kafka"),
        ({"broker": {"kind": "pulsar"}}, "broker.service_url: required when kind is pulsar"),
        (
            {"broker": {"kind": "pulsar", "service_url": "http//x"}},
            "broker.service_url: expected a URL such as pulsar://localhost:6650, got 'http//x'",
        ),
        (
            {"broker": {"bootstrap": "h:1", "partitions": 0}},
            "broker.partitions: must be at least 1, got 0",
        ),
        (
            {"broker": {"bootstrap": "h:1", "partitions": "many"}},
            "broker.partitions: expected an integer, got 'many'",
        ),
        (
            {"broker": {"bootstrap": "h:1", "create_topics": "perhaps"}},
            "broker.create_topics: expected true or false, got 'perhaps'",
        ),
        (
            {"broker": {"bootstrap": "h:1", "create_topics": "no"}},
            "broker.create_topics: expected true or false, got 'no'",
        ),
        (
            {"broker": {"bootstrap": "h:1", "partitions": True}},
            "broker.partitions: expected an integer, got a boolean (True)",
        ),
        (
            {"broker": {"bootstrap": "h:1", "replication_factor": False}},
            "broker.replication_factor: expected an integer, got a boolean (False)",
        ),
        (
            {"broker": {"bootstrap": "h:1", "static_membership": 1}},
            "broker.static_membership: expected true or false, got 1",
        ),
        ({"store": {"durable": 0}}, "store.durable: expected true or false, got 0"),
        ({"store": {"standby": True}}, "store.standby: expected an integer, got a boolean (True)"),
        (
            {"processing": {"mailbox_capacity": True}},
            "processing.mailbox_capacity: expected an integer, got a boolean (True)",
        ),
        (
            {"broker": {"bootstrap": "h:1", "settings": {"group.id": "x"}}},
            "broker.settings['group.id']: set by swimstream from app; remove it",
        ),
        (
            {"broker": {"bootstrap": "h:1", "settings": {"acks": 1}}},
            "broker.settings['acks']: set by swimstream to all, as idempotent writes need; "
            "remove it",
        ),
        (
            {"broker": {"bootstrap": "h:1", "settings": {"client.id": "me"}}},
            "broker.settings['client.id']: set by swimstream from app and mesh.instance_id; "
            "remove it",
        ),
        (
            {"broker": {"bootstrap": "h:1", "settings": {"linger.ms": [5]}}},
            "broker.settings['linger.ms']: must be a string, number or boolean",
        ),
        ({"broker": "kafka"}, "broker: expected a mapping of keys to values, got 'kafka'"),
        ({"agents": {}}, "agents: must not be empty"),
        (
            {"agents": {"vehicle": {"class": "examples.traffic.Vehicle", "route": "/vehicle/:id"}}},
            "agents.vehicle.class: expected 'module:Class', such as examples.traffic:Vehicle, "
            "got 'examples.traffic.Vehicle'",
        ),
        ({"agents": {"vehicle": {"route": "/vehicle/:id"}}}, "agents.vehicle.class: required"),
        (
            {"agents": {"vehicle": {"class": "a:B", "route": "/vehicle/:id/"}}},
            "agents.vehicle.route: segment 3 of '/vehicle/:id/' is empty",
        ),
        (
            {"agents": {"vehicle": {"class": "a:B", "route": "/v/:id/:id"}}},
            "agents.vehicle.route: param ':id' appears twice",
        ),
        (
            {"agents": {"bad name": {"class": "a:B", "route": "/v/:id"}}},
            "agents['bad name']: 'bad name' must be 1-200 letters, digits, '.', '_' or '-'",
        ),
        (
            {
                "sources": [
                    {
                        "topic": "t",
                        "route": "/vehicle/{payload.vehicle}/{paylod.x}",
                        "lane": "position",
                    }
                ]
            },
            "sources[0].route: unknown placeholder {paylod.x}; a placeholder is {key}, {payload}, "
            "{payload.<field>}, {header.<name>}, {topic} or {partition}",
        ),
        (
            {"agents": {1: {"class": "a:B", "route": "/v/:id"}}},
            "agents.1: expected a string, got 1",
        ),
        ({"sources": [{"topic": "t", "route": "/vehicle/{key}"}]}, "sources[0].lane: required"),
        (
            {"sources": [{"topic": "t", "route": "/vehicle/{key}", "lane": "po-sition"}]},
            "sources[0].lane: lane name 'po-sition' is not an identifier",
        ),
        (
            {"sources": [{"topic": "t", "route": "/vehicle/{key}", "lane": "p", "format": "avro"}]},
            "sources[0].format: expected 'json' or 'raw', got 'avro'",
        ),
        ({"sources": {"topic": "t"}}, "sources: expected a list, got a mapping"),
        (
            {"sinks": [{"from": "/vehicle/:id", "topic": "t"}]},
            "sinks[0].from: expected <route>#<lane>, such as /vehicle/:id#alerts, "
            "got '/vehicle/:id'",
        ),
        (
            {"sinks": [{"from": "/vehicle/:id#alerts", "publish": "a", "topic": "t"}]},
            "sinks[0].publish: give either from (a lane sink) or publish, not both",
        ),
        (
            {"sinks": [{"from": "/vehicle/:id#alerts", "topic": "t", "key": "vid"}]},
            "sinks[0].key: 'vid' is not a param of /vehicle/:id; expected id or uri",
        ),
        (
            {"sinks": [{"topic": "t", "key": "id"}]},
            "sinks[0].key: only lane sinks (with from) take a key",
        ),
        (
            {"sinks": [{"topic": "t", "coalesce": "100ms"}]},
            "sinks[0].coalesce: only lane sinks (with from) coalesce changes",
        ),
        (
            {"sinks": [{"from": "/vehicle/:id#alerts", "topic": "t", "coalesce": 0}]},
            "sinks[0].coalesce: must be a positive duration, such as 100ms",
        ),
        (
            {"processing": "at-most-once"},
            "processing.guarantee: expected 'exactly-once' or 'at-least-once', got 'at-most-once'",
        ),
        (
            {"processing": {"commit_interval": "soon"}},
            "processing.commit_interval: expected a duration such as 100ms, 5s, 2m or 1h "
            "(a bare number is seconds), got 'soon'",
        ),
        (
            {"processing": {"commit_interval": 10**400}},  # too large for a float
            "processing.commit_interval: expected a duration such as 100ms, 5s, 2m or 1h "
            "(a bare number is seconds), got 10000000000000000000000000000000000000000000000000"
            "0000000...",
        ),
        (
            {"processing": {"drain_timeout": float("inf")}},  # YAML's .inf
            "processing.drain_timeout: expected a duration such as 100ms, 5s, 2m or 1h "
            "(a bare number is seconds), got inf",
        ),
        (
            {"sinks": [{"from": "/vehicle/:id#alerts", "topic": "t", "coalesce": float("nan")}]},
            "sinks[0].coalesce: expected a duration such as 100ms, 5s, 2m or 1h "
            "(a bare number is seconds), got nan",
        ),
        (
            {"processing": {"commit_interval": "\uff15s"}},  # a fullwidth 5: not a number here
            "processing.commit_interval: expected a duration such as 100ms, 5s, 2m or 1h "
            "(a bare number is seconds), got '\uff15s'",
        ),
        (
            {"processing": {"idle_timeout": 0}},
            "processing.idle_timeout: must be more than 0, got 0",
        ),
        (
            {"web": {"command_timeout": 0}},
            "web.command_timeout: must be more than 0, got 0",
        ),
        (
            {"web": {"max_body_size": "1MiB"}},
            "web.max_body_size: expected an integer, got '1MiB'",
        ),
        (
            {"web": {"max_streams": 0}},
            "web.max_streams: must be at least 1, got 0",
        ),
        (
            {"mesh": {"listen": "7001"}},
            "mesh.listen: expected host:port, such as 0.0.0.0:7001, got '7001'",
        ),
        (
            {"mesh": {"listen": "h:70011"}},
            "mesh.listen: expected host:port, such as 0.0.0.0:7001, got 'h:70011'",
        ),
        (
            {"mesh": {"listen": "h:" + "9" * 5000}},  # int() would name Python's own limit
            "mesh.listen: expected host:port, such as 0.0.0.0:7001, got 'h:" + "9" * 5000 + "'",
        ),
        (
            {"web": {"listen": "h:\u0669\u0660\u0660\u0661"}},  # Arabic-Indic digits
            "web.listen: expected host:port, such as 0.0.0.0:9001, "
            "got 'h:\u0669\u0660\u0660\u0661'",
        ),
        (
            {"broker": {"bootstrap": "k1:9092,k2:99999"}},
            "broker.bootstrap: expected host:port[,host:port...], got 'k1:9092,k2:99999'",
        ),
        (
            {"web": {"listen": "9001"}},  # (the mesh's port in the example was a trap)
            "web.listen: expected host:port, such as 0.0.0.0:9001, got '9001'",
        ),
        (
            {"mesh": {"advertise": "7001"}},  # (an example to dial, not 0.0.0.0)
            "mesh.advertise: expected host:port, such as 10.0.0.2:7001, got '7001'",
        ),
        (
            {"mesh": {"advertise": "0.0.0.0:7001"}},
            "mesh.advertise: '0.0.0.0:7001' is not an address other instances can dial",
        ),
        ({"mesh": {"members": ["a:1", "b:0"]}}, "mesh.members[1]: 'b:0' needs a real port, not 0"),
        ({"mesh": {"members": ["a:1", "a:1"]}}, "mesh.members[1]: a:1 is listed twice"),
        (
            {"mesh": {"heartbeat_interval": "5s", "peer_timeout": "2s"}},
            "mesh.peer_timeout: must be longer than heartbeat_interval",
        ),
        ({"store": {"path": ""}}, "store.path: must not be empty"),
        ({"web": {"listen": "0.0.0.0:7001"}}, "web.listen: uses port 7001, as mesh.listen does"),
        ({"wbe": {}}, "wbe: unknown key; did you mean 'web'?"),
        (
            {"zzz": 1},
            "zzz: unknown key; expected one of: app, broker, agents, sources, sinks, "
            "dead_letter, processing, mesh, store, web",
        ),
    ],
)
def test_each_problem_names_its_key_path(parts: dict[str, Any], line: str) -> None:
    assert problems(document(**parts)) == [line]


def test_all_problems_are_reported_at_once() -> None:
    text = """\
app: traffic
broker: {kind: kafak, bootsrap: localhost:9092}
agents:
  vehicle: {class: examples.traffic.Vehicle, route: /vehicle/:id}
sources:
  - topic: positions
    route: /vehicle/{key}
    lane: position
  - {topic: positions, route: "/vehicle/{paylod.vehicle}", lane: position}
processing: at-most-once
"""
    assert problems(text) == [
        "broker.kind: expected 'kafka', 'pulsar' or 'embedded', got 'kafak'",
        "broker.bootsrap: unknown key; did you mean 'bootstrap'?",
        "agents.vehicle.class: expected 'module:Class', such as examples.traffic:Vehicle, "
        "got 'examples.traffic.Vehicle'",
        "sources[1].route: unknown placeholder {paylod.vehicle}; a placeholder is {key}, "
        "{payload}, {payload.<field>}, {header.<name>}, {topic} or {partition}",
        "processing.guarantee: expected 'exactly-once' or 'at-least-once', got 'at-most-once'",
    ]


def test_keys_yaml_reads_as_numbers_or_null_are_unknown_keys_at_their_path() -> None:
    """YAML reads ``1:``, ``null:`` or ``2024-01-01:`` as keys that are no strings; each is
    named as written, under its mapping, not as a list index."""
    text = """\
app: traffic
broker: {kind: kafka, bootstrap: "localhost:9092", 1: x}
agents:
  vehicle: {class: "a:B", route: /vehicle/:id}
sources:
  - {topic: t, route: "/vehicle/{key}", lane: position, null: x}
2024-01-01: x
"""
    assert problems(text) == [
        "broker.1: unknown key; expected one of: kind, bootstrap, service_url, embedded_kind, "
        "settings, pulsar, create_topics, partitions, replication_factor, static_membership, "
        "subscription_type, partitioner",
        "sources[0].null: unknown key; expected one of: topic, route, lane, format, kind, "
        "offset_reset",
        "2024-01-01: unknown key; expected one of: app, broker, agents, sources, sinks, "
        "dead_letter, processing, mesh, store, web",
    ]


KEY_HINT = (
    "; YAML reads an unquoted yes, no, on, off, true or false as a boolean and ~ or null "
    "as null: quote the key"
)


def test_keys_yaml_reads_as_booleans_null_or_numbers_are_named_as_yaml_read_them() -> None:
    """They were named by pydantic's stand-ins: ``no:`` as ``agents.0``, ``~:`` as
    ``agents.None``, ``on:`` as ``broker.settings.1``, and ``3:``'s entry as the list
    index ``agents[3]``."""
    text = """\
app: traffic
broker: {kind: kafka, bootstrap: "localhost:9092", settings: {on: 1}}
agents:
  no: {class: "a:B", route: /x/:id}
  ~: {}
  3: {route: /y/:id}
"""
    assert problems(text) == [
        "broker.settings.true: expected a string, got a boolean (True)" + KEY_HINT,
        "agents.false: expected a string, got a boolean (False)" + KEY_HINT,
        "agents.null: expected a string, got nothing (null)" + KEY_HINT,
        "agents.null.class: required",
        "agents.null.route: required",
        "agents.3: expected a string, got 3",
        "agents.3.class: required",
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "dead_letter: 2026-01-01",
            "dead_letter: expected a string, got 2026-01-01, which YAML reads as a date "
            "(quote it to keep it text)",
        ),
        (
            "processing: {commit_interval: 2026-01-01 12:00:00}",
            "processing.commit_interval: expected a duration such as 100ms, 5s, 2m or 1h "
            "(a bare number is seconds), got 2026-01-01T12:00:00, which YAML reads as a date "
            "(quote it to keep it text)",
        ),
    ],
)
def test_a_value_yaml_reads_as_a_date_is_shown_as_written(line: str, expected: str) -> None:
    """Not as Python spells it: datetime.date(2026, 1, 1) is no text of the YAML."""
    text = "app: t\nbroker: {bootstrap: 'k:1'}\nagents: {v: {class: 'a:B', route: /v/:id}}\n"
    assert problems(text + line + "\n") == [expected]


def test_an_unset_variable_under_a_boolean_key_is_named_at_that_key() -> None:
    text = 'app: t\nbroker: {bootstrap: "k:1", settings: {off: "${X}"}}\nagents: {}\n'
    assert problems(text)[0] == (
        "broker.settings.false: environment variable X is not set "
        "(write ${X:-default} to give a default)"
    )


def test_every_problem_of_broker_settings_is_reported() -> None:
    settings = {"group.id": "x", "enable.auto.commit": True, "linger.ms": [1], "acks": "all"}
    assert problems(document(broker={"bootstrap": "h:1", "settings": settings})) == [
        "broker.settings['group.id']: set by swimstream from app; remove it",
        "broker.settings['enable.auto.commit']: set by swimstream from processing.guarantee; "
        "remove it",
        "broker.settings['linger.ms']: must be a string, number or boolean",
        "broker.settings['acks']: set by swimstream to all, as idempotent writes need; remove it",
    ]


def test_config_error_carries_the_problems_as_pairs() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document(app="my app", broker={"kind": "kafka"}), {})
    assert caught.value.problems == [
        ("app", "'my app' must be 1-200 letters, digits, '.', '_' or '-'"),
        ("broker.bootstrap", "required when kind is kafka"),
    ]
    assert str(caught.value).splitlines() == [
        "app: 'my app' must be 1-200 letters, digits, '.', '_' or '-'",
        "broker.bootstrap: required when kind is kafka",
    ]


def test_a_config_error_from_a_message_alone_still_has_problems() -> None:
    error = ConfigError("something is off")
    assert error.problems == [("", "something is off")]
    assert str(error) == "something is off"


def config_fields() -> Iterator[tuple[str, FieldInfo]]:
    """Every field of every configuration model, as ``Model.field``."""
    pending: list[type[BaseModel]] = [AppConfig]
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        seen.add(model)
        for name, field in model.model_fields.items():
            yield f"{model.__name__}.{name}", field
            inner = [field.annotation]
            while inner:
                arg = inner.pop()
                inner += get_args(arg)
                if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in seen:
                    pending.append(arg)


FIELDS = dict(config_fields())


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_boolean_and_integer_fields_are_strict(name: str) -> None:
    """Each takes the strict type (a YAML boolean for a boolean, no boolean for an integer)."""
    field = FIELDS[name]
    annotation: Any = field.annotation
    metadata = list(field.metadata)
    if isinstance(annotation, types.UnionType):
        (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata += extra
    strict = {bool: get_args(Boolean)[1:], int: get_args(Integer)[1:]}.get(annotation, ())
    assert all(item in metadata for item in strict), f"{name}: use Boolean or Integer"
