import json
from collections.abc import Mapping
from pathlib import Path

import pydantic
import pytest

from swimstream.config import AppConfig, Setting, load_config, parse_config, read_yaml
from swimstream.errors import ConfigError
from swimstream.routing import RoutePattern, RouteTemplate
from tests.config.documents import DESIGN_EXAMPLE, document, problems

EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "config" / "towers.yaml"


def test_the_design_example_loads_as_is() -> None:
    config = load_config(DESIGN_EXAMPLE, {})
    assert config.app == "traffic"
    assert config.broker.kind == "kafka"
    assert config.broker.bootstrap == "localhost:9092"
    vehicle = config.agents["vehicle"]
    assert vehicle.class_path == "examples.traffic:Vehicle"
    assert vehicle.route == RoutePattern.parse("/vehicle/:id")
    (source,) = config.sources
    assert source.route == RouteTemplate.parse("/vehicle/{key}")
    assert (source.topic, source.lane, source.format) == ("vehicle-positions", "position", "json")
    (sink,) = config.sinks
    assert sink.from_ is not None
    assert str(sink.from_) == "/vehicle/:id#alerts"
    assert (sink.topic, sink.record_key, sink.publish_name) == ("vehicle-alerts", "id", None)
    assert config.mesh.listen == "0.0.0.0:7001"
    assert config.store.path == "./data"
    assert config.web.listen == "0.0.0.0:9001"


def test_the_example_file_loads_from_a_path_and_from_a_file_name() -> None:
    by_path = load_config(EXAMPLE_FILE, {"KAFKA_BOOTSTRAP": "kafka:9092"})
    by_name = load_config(str(EXAMPLE_FILE), {})
    assert by_path.broker.bootstrap == "kafka:9092"
    assert by_name.broker.bootstrap == "localhost:9092"
    assert by_name.agents["device"].class_path == "examples.towers.app:Device"
    assert [sink.publish_name for sink in by_name.sinks] == [None, "alerts"]


def test_defaults_are_what_a_kafka_streams_user_expects() -> None:
    config = load_config(DESIGN_EXAMPLE, {})
    assert config.dead_letter == "traffic.dead-letter"
    assert config.consumer_group == "traffic"
    assert config.changelog_topic == "traffic.changelog"
    assert config.broker.partitioner == "murmur2"
    assert config.broker.create_topics is True
    assert config.broker.partitions == 8
    processing = config.processing
    assert processing.guarantee == "exactly-once"
    assert processing.commit_interval == 0.1
    assert processing.max_poll_records == 500
    assert processing.idle_timeout == 300.0
    assert config.store.standby == 0
    assert config.mesh.members == ()


def test_processing_accepts_the_guarantee_alone() -> None:
    config = parse_config(document(processing="at-least-once"), {})
    assert config.processing.guarantee == "at-least-once"
    assert config.processing.mailbox_capacity == 1000


def test_durations_take_units() -> None:
    config = parse_config(
        document(processing={"commit_interval": "250ms", "idle_timeout": "2m", "drain_timeout": 5}),
        {},
    )
    assert config.processing.commit_interval == 0.25
    assert config.processing.idle_timeout == 120.0
    assert config.processing.drain_timeout == 5.0


def test_sinks_for_publish_default_their_name_to_the_topic() -> None:
    config = parse_config(
        document(sinks=[{"topic": "alerts"}, {"publish": "hot", "topic": "hot-devices"}]), {}
    )
    assert [sink.publish_name for sink in config.sinks] == ["alerts", "hot"]
    assert [sink.record_key for sink in config.sinks] == [None, None]


def test_a_lane_sink_keys_by_its_only_param_or_else_the_uri() -> None:
    config = parse_config(
        document(
            agents={
                "zone": {"class": "a:B", "route": "/region/:name/zone/:z"},
                "world": {"class": "a:B", "route": "/world"},
            },
            sources=[],
            sinks=[
                {"from": "/region/:name/zone/:z#load", "topic": "a"},
                {"from": "/region/:name/zone/:z#load", "topic": "b", "key": "z"},
                {"from": "/world#totals", "topic": "c"},
            ],
        ),
        {},
    )
    assert [sink.record_key for sink in config.sinks] == ["uri", "z", "uri"]


def test_the_configuration_is_frozen() -> None:
    config = load_config(DESIGN_EXAMPLE, {})
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.app = "other"
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.broker.partitions = 3


def test_to_document_round_trips() -> None:
    config = load_config(EXAMPLE_FILE, {})
    document_form = config.to_document()
    assert document_form["agents"]["device"]["class"] == "examples.towers.app:Device"
    assert document_form["sinks"][0]["from"] == "/tower/:id#summary"
    assert parse_config(document_form, {}) == config


def test_agent_routes_map_uris_to_agent_names() -> None:
    routes = parse_config(document(), {}).agent_routes()
    found = routes.lookup("/tower/7")
    assert found is not None
    assert (found.target, found.params) == ("tower", {"id": "7"})


def test_yaml_syntax_errors_give_line_and_column() -> None:
    assert problems("app: x\n  broker: 1\n") == [
        "line 2, column 9: YAML syntax error: mapping values are not allowed here"
    ]
    (line,) = problems("app: x\nbroker: {kind: kafka\n")
    assert line.startswith("line 3, column 1: YAML syntax error: expected ',' or '}'")


def test_characters_yaml_refuses_give_line_and_column() -> None:
    """A control character (a NUL pasted in, a stray bell) is refused before parsing."""
    assert problems("app: x\nbroker: \x00\n") == [
        "line 2, column 9: YAML syntax error: character #x0000 is not allowed in YAML"
    ]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("2025-02-29", "a date"),  # (not a leap year; YAML reads the topic as a date)
        ("2026-01-01 25:00:00", "a date"),
        ("!!int Hunter2", "an integer"),
        ("!!int 0x", "an integer"),
        ("!!float ''", "a number"),
        ("!!bool Hunter2", "a boolean"),
    ],
)
def test_a_value_yaml_cannot_build_is_a_problem_with_its_line_not_a_crash(
    value: str, kind: str
) -> None:
    """PyYAML raises plain ValueError, KeyError or IndexError for these (a traceback out
    of `swimstream check`); the value itself is not quoted, as it may be a password."""
    text = f"app: a\nbroker:\n  settings:\n    sasl.password: {value}\n"
    assert problems(text) == [
        f"line 4, column 20: YAML syntax error: YAML reads this value as {kind}, "
        "but it is not a valid one (quote it if it is text)"
    ]


def test_a_document_nested_too_deeply_to_read_is_a_problem_not_a_crash() -> None:
    """PyYAML reads nesting by recursion: thousands of levels raised RecursionError."""
    assert problems("app: a\nx: " + "[" * 3000 + "]" * 3000 + "\n") == [
        "the YAML is nested too deeply to read (lists or mappings hundreds of levels deep)"
    ]


def test_duplicate_keys_are_errors_with_both_lines() -> None:
    text = (
        "app: a\nagents:\n  v: {class: a:B, route: /v/:id}\n  v: {class: a:C, route: /w/:id}\n"
        "broker: {bootstrap: 'h:1'}\n"
    )
    assert problems(text) == ["agents.v: duplicate key (line 4; first on line 3)"]


def test_duplicate_keys_are_reported_with_the_other_problems() -> None:
    """A duplicate key held back every other problem until it was fixed, as if the
    document could not be read, though it reads."""
    text = (
        "app: a\napp: b\nbroker: {bootstrap: 'h:1'}\n"
        "agents: {v: {class: a:B, route: /v/:id}}\nprocesing: {}\n"
    )
    assert problems(text) == [
        "app: duplicate key (line 2; first on line 1)",
        "procesing: unknown key; did you mean 'processing'?",
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", "the configuration is empty"),
        ("# nothing but a comment\n", "the configuration is empty"),
        ("- app: x\n", "the configuration must be a mapping of keys, got a list"),
        ("just text\n", "the configuration must be a mapping of keys, got 'just text'"),
    ],
)
def test_documents_that_are_not_mappings_are_refused(text: str, line: str) -> None:
    assert problems(text) == [line]


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, {})
    assert caught.value.problems == [(str(missing), "cannot read: No such file or directory")]


def test_a_file_in_utf16_with_its_byte_order_mark_loads(tmp_path: Path) -> None:
    """YAML readers must take UTF-16 too: Windows PowerShell writes it (`> app.yaml`)."""
    path = tmp_path / "app.yaml"
    path.write_text(DESIGN_EXAMPLE, encoding="utf-16")
    assert load_config(path, {}).app == "traffic"


def test_bytes_that_are_not_utf8_are_named_by_line_and_column(tmp_path: Path) -> None:
    """Not by byte offset: "can't decode byte 0xe9 in position 4213" in a long file."""
    path = tmp_path / "app.yaml"
    path.write_bytes("app: x\n# caf\u00e9\nbroker: {}\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [
        (
            str(path),
            "cannot read: byte 0xe9 at line 2, column 6 is not UTF-8 (save the file as UTF-8)",
        )
    ]


def test_a_json_file_indented_with_tabs_loads(tmp_path: Path) -> None:
    """JSON takes tabs between its tokens, and so does YAML inside [...] and {...}; PyYAML
    refused them ("found character '\\t' that cannot start any token")."""
    path = tmp_path / "app.json"
    path.write_text(json.dumps(document(), indent="\t"))
    assert load_config(path, {}).app == "traffic"


def test_a_tab_still_cannot_indent_a_block() -> None:
    (line,) = problems("app: x\nbroker:\n\tkind: kafka\n")
    assert line.startswith("line 3, column 1: YAML syntax error: found character '\\t'")


def test_read_yaml_follows_anchors_and_merge_keys() -> None:
    text = "base: &b {kind: kafka}\nbroker:\n  <<: *b\n  bootstrap: h:1\n"
    assert read_yaml(text) == {
        "base": {"kind": "kafka"},
        "broker": {"kind": "kafka", "bootstrap": "h:1"},
    }


def test_app_config_validates_when_built_in_python() -> None:
    config = AppConfig.model_validate(document())
    assert config.dead_letter == "traffic.dead-letter"


def test_static_membership_is_kept_except_on_the_embedded_broker() -> None:
    kafka = parse_config(document(), {})
    embedded = parse_config(document(broker={"kind": "embedded"}), {})
    chosen = parse_config(
        document(broker={"kind": "kafka", "bootstrap": "k:9092", "static_membership": False}), {}
    )
    assert kafka.broker.static_members is True
    assert embedded.broker.static_members is False  # Tansu holds static joins 6 s
    assert chosen.broker.static_members is False


def refuse_misspelt(settings: Mapping[str, Setting]) -> list[tuple[str, str]]:
    """A stand-in for the client library's check: it knows no name ending in ``.mss``."""
    return [(name, "unknown property") for name in settings if name.endswith(".mss")]


def test_a_settings_check_is_keyed_by_setting_and_joins_the_other_problems() -> None:
    """The check sees only the settings worth it (not those swimstream owns, reported
    already), and its problems come in the same pass as the models'."""
    seen: list[Mapping[str, Setting]] = []

    def check(settings: Mapping[str, Setting]) -> list[tuple[str, str]]:
        seen.append(dict(settings))
        return refuse_misspelt(settings)

    settings = {"linger.mss": 5, "acks": "all", "fetch.wait.max.ms": 10}
    broker = {"kind": "kafka", "bootstrap": "localhost:9092", "settings": settings}
    with pytest.raises(ConfigError) as caught:
        parse_config(document(broker=broker, partitions="x"), {}, check)
    paths = [path for path, _ in caught.value.problems]
    assert "broker.settings['linger.mss']" in paths and "broker.settings['acks']" in paths
    assert seen == [{"linger.mss": 5, "fetch.wait.max.ms": 10}]
    with pytest.raises(ConfigError) as caught:
        parse_config(document(broker={**broker, "settings": {"linger.mss": 5}}), {}, check)
    assert caught.value.problems == [("broker.settings['linger.mss']", "unknown property")]
    assert parse_config(document(broker=broker | {"settings": {}}), {}, check).app == "traffic"
