from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimstream.config import load_config
from swimstream.config.env import Substituted, substitute
from tests.config.documents import problems

TEXT = """\
app: ${APP:-traffic}
broker:
  bootstrap: ${KAFKA}
  partitions: ${PARTITIONS:-8}
  create_topics: ${CREATE:-true}
agents:
  vehicle: {class: "a:B", route: /vehicle/:id}
mesh:
  members: ["${PEER_A}", "peer-b:7001"]
"""


def test_references_are_replaced_and_converted_by_the_field_type() -> None:
    config = load_config(
        TEXT, {"KAFKA": "k1:9092,k2:9092", "PARTITIONS": "12", "CREATE": "false", "PEER_A": "a:1"}
    )
    assert config.app == "traffic"
    assert config.broker.bootstrap == "k1:9092,k2:9092"
    assert config.broker.partitions == 12
    assert config.broker.create_topics is False
    assert config.mesh.members == ("a:1", "peer-b:7001")


@pytest.mark.parametrize(
    ("durable", "standby", "env"),
    [
        (True, 4, {}),
        (False, 2, {"DURABLE": "false", "STANDBY": "2"}),
        (False, 1, {"DURABLE": "0", "STANDBY": "1"}),
    ],
)
def test_booleans_and_integers_take_text_from_the_environment(
    durable: bool, standby: int, env: dict[str, str]
) -> None:
    text = TEXT + "store: {durable: '${DURABLE:-true}', standby: '${STANDBY:-4}'}\n"
    config = load_config(text, {"KAFKA": "k:1", "PEER_A": "a:1", **env})
    assert config.store.durable is durable
    assert config.store.standby == standby


def test_a_substituted_value_that_is_no_boolean_is_refused() -> None:
    text = TEXT + "store: {durable: '${DURABLE}'}\n"
    assert problems(text, {"KAFKA": "k:1", "PEER_A": "a:1", "DURABLE": "perhaps"}) == [
        "store.durable: expected true or false, got 'perhaps'"
    ]


def test_substituted_text_is_marked_and_plain_text_is_not() -> None:
    document, _ = substitute({"a": "${A}", "b": "x-${A:-d}", "c": "$$", "d": "plain"}, {"A": "1"})
    assert [isinstance(document[k], Substituted) for k in "abcd"] == [True, True, False, False]


def test_no_substituted_string_reaches_the_configuration() -> None:
    text = """\
app: ${APP}
broker: {bootstrap: "${APP}:9092", settings: {client.rack: "${APP}"}}
agents:
  vehicle: {class: "a:B", route: "/${APP}/:id"}
sources: [{topic: "${APP}", route: "/${APP}/{key}", lane: "${APP}"}]
sinks: [{from: "/${APP}/:id#${APP}", topic: "${APP}-out"}]
"""
    config = load_config(text, {"APP": "v"})
    source, sink = config.sources[0], config.sinks[0]
    assert sink.from_ is not None
    texts = [
        config.app,
        config.broker.bootstrap,
        config.broker.settings["client.rack"],
        config.agents["vehicle"].route.text,
        source.topic,
        source.route.text,
        source.lane,
        sink.from_.route.text,
        sink.from_.lane,
        sink.topic,
    ]
    assert [type(text) for text in texts] == [str] * len(texts)


def test_an_unset_variable_names_the_key_path_and_the_variable() -> None:
    assert problems(TEXT, {"PEER_A": "a:1"}) == [
        "broker.bootstrap: environment variable KAFKA is not set "
        "(write ${KAFKA:-default} to give a default)"
    ]
    assert problems(TEXT, {"KAFKA": "k:1"}) == [
        "mesh.members[0]: environment variable PEER_A is not set "
        "(write ${PEER_A:-default} to give a default)"
    ]


def test_unset_variables_and_invalid_values_are_reported_together() -> None:
    env = {"KAFKA": "k:1", "PEER_A": "a:1", "PARTITIONS": "none"}
    assert problems(TEXT + "zzz: 1\n", env) == [
        "broker.partitions: expected an integer, got 'none'",
        "zzz: unknown key; expected one of: app, broker, agents, sources, sinks, dead_letter, "
        "processing, mesh, store, web",
    ]


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("${A}${B}", {"A": "x", "B": "y"}, "xy"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),  # empty counts as unset, as in the shell
        ("${A:-}", {}, ""),
        ("${A:-host:9092}", {}, "host:9092"),
        ("$$", {}, "$"),
        ("$${A}", {"A": "x"}, "${A}"),
        ("cost: 5$", {}, "cost: 5$"),
        ("$A", {"A": "x"}, "$A"),  # only the braced form is a reference
        ("${A:-{x}}", {}, "{x}"),
        ("${A:-x}}", {}, "x}"),  # the reference ends where its braces pair up
        ("${A:-{a}-{b}}/${B:-{c}}", {"B": "y"}, "{a}-{b}/y"),
    ],
)
def test_substitution_forms(value: str, env: dict[str, str], expected: str) -> None:
    assert substitute({"k": value}, env) == ({"k": expected}, [])


_WRITE = "write ${NAME} or ${NAME:-default} ($$ for a literal $)"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${A", "'${' without a closing '}'"),
        ("${A:-{x}", "'${' without a closing '}' (braces in a default must pair up)"),
        ("${}", "${} is not a variable reference; " + _WRITE),
        ("${1A}", "${1A} is not a variable reference; " + _WRITE),
        ("${A-x}", "${A-x} is not a variable reference; " + _WRITE),
        (
            "${A:-${B}}",
            "the default of ${A:-...} holds a reference; a default is plain text "
            "(nested references are not supported)",
        ),
    ],
)
def test_malformed_references_are_problems(value: str, message: str) -> None:
    _, found = substitute({"a": [{"b": value}]}, {})
    assert found == [("a[0].b", message)]


def test_keys_and_non_strings_are_left_alone() -> None:
    document = {"${A}": 1, "n": 2, "f": 1.5, "t": True, "none": None}
    assert substitute(document, {"A": "x"}) == (document, [])


@given(st.text(st.characters(codec="utf-8", exclude_characters="$"), max_size=20))
def test_text_without_a_dollar_is_unchanged(text: str) -> None:
    assert substitute({"k": text}, {}) == ({"k": text}, [])


@given(st.text(st.characters(codec="utf-8"), max_size=20))
def test_a_substituted_value_is_taken_literally(value: str) -> None:
    assert substitute({"k": "${V}"}, {"V": value}) == ({"k": value}, [])


ROUTED = """\
app: traffic
broker: {bootstrap: "k:9092"}
agents:
  vehicle: {class: "a:B", route: /vehicle/:id}
sources:
  - topic: positions
    route: "${ROUTE:-/vehicle/{key}}"
    lane: position
"""


@pytest.mark.parametrize(
    ("env", "route"),
    [
        ({}, "/vehicle/{key}"),
        ({"ROUTE": "/vehicle/{payload.id}"}, "/vehicle/{payload.id}"),
    ],
)
def test_a_route_template_may_be_the_default_of_a_reference(
    env: dict[str, str], route: str
) -> None:
    """The default's own braces used to end the reference early: it worked only while
    ROUTE was unset, where a stray '}' happened to complete the template."""
    assert load_config(ROUTED, env).sources[0].route.text == route


def test_a_value_that_contains_itself_is_a_problem_at_the_path_where_it_recurs() -> None:
    """What ``sources: &s [*s]`` loads as; it crashed with a RecursionError."""
    looped: list[Any] = []
    looped.append({"topic": "t", "again": looped})
    document, found = substitute({"sources": looped}, {})
    assert found == [
        (
            "sources[0].again",
            "a YAML alias here names a value that contains it (a recursive anchor), "
            "so the value would be infinitely deep",
        )
    ]
    assert document == {"sources": [{"topic": "t", "again": None}]}


def test_a_value_named_by_two_aliases_side_by_side_is_no_loop() -> None:
    shared = {"a": "${A:-x}"}
    assert substitute({"one": shared, "two": [shared, shared]}, {}) == (
        {"one": {"a": "x"}, "two": [{"a": "x"}, {"a": "x"}]},
        [],
    )
