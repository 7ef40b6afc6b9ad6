from pathlib import Path
from typing import Any

import pytest

from swimstream.config import check_config, load_config, parse_config, resolve_agents
from swimstream.errors import ConfigError
from tests.config import standins
from tests.config.documents import document

EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "config" / "towers.yaml"


def resolve_problems(**parts: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        resolve_agents(parse_config(document(**parts), {}))
    return caught.value.problems


def test_resolve_imports_the_classes_by_agent_name() -> None:
    classes = resolve_agents(parse_config(document(), {}))
    assert classes == {"vehicle": standins.Vehicle, "tower": standins.Tower}


def test_a_subclass_of_a_base_resolves() -> None:
    agents = {"sub": {"class": "tests.config.standins:AgentSubclass", "route": "/s/:id"}}
    config = parse_config(document(agents=agents, sources=[], sinks=[]), {})
    assert resolve_agents(config) == {"sub": standins.AgentSubclass}


def test_nested_classes_resolve() -> None:
    agents = {"inner": {"class": "tests.config.standins:Outer.Inner", "route": "/i/:id"}}
    config = parse_config(document(agents=agents, sources=[], sinks=[]), {})
    assert resolve_agents(config) == {"inner": standins.Outer.Inner}


@pytest.mark.parametrize(
    ("class_path", "message"),
    [
        (
            "examples.nope:Vehicle",
            "cannot import 'examples.nope:Vehicle' (No module named 'examples.nope')",
        ),
        (  # (the package itself is not found: said where modules are looked for)
            "nowhere_app.agents:Vehicle",
            "cannot import 'nowhere_app.agents:Vehicle' (No module named 'nowhere_app'; "
            "modules are imported from the working directory and PYTHONPATH: run swimstream "
            "from the directory that holds nowhere_app, or add that directory to PYTHONPATH)",
        ),
        (
            "tests.config.standins:Vehicel",
            "cannot import 'tests.config.standins:Vehicel' "
            "('tests.config.standins' has no attribute 'Vehicel')",
        ),
        (
            "tests.config.broken_module:Vehicle",
            "cannot import 'tests.config.broken_module:Vehicle' (RuntimeError: boom at import)",
        ),
        (
            "tests.config.exiting_module:Vehicle",
            "cannot import 'tests.config.exiting_module:Vehicle' "
            "(SystemExit: this module is a script)",
        ),
        (
            "tests.config.standins:not_a_class",
            "'tests.config.standins:not_a_class' is not a class (it is int)",
        ),
        (
            "tests.config.standins:NotAnAgent",
            "tests.config.standins:NotAnAgent is not an agent class (no __swim_lanes__; "
            "agent classes subclass swimstream.Agent)",
        ),
        (
            "tests.config.standins:AgentBase",
            "tests.config.standins:AgentBase is the base class of agents, not an agent: "
            "name your subclass of it, which declares the lanes",
        ),
    ],
)
def test_a_class_that_cannot_be_had_is_named_with_its_key_path(
    class_path: str, message: str
) -> None:
    agents = {
        "vehicle": {"class": class_path, "route": "/vehicle/:id"},
        "tower": {"class": "tests.config.standins:Tower", "route": "/tower/:id"},
    }
    assert resolve_problems(agents=agents) == [("agents.vehicle.class", message)]


@pytest.mark.parametrize(
    ("lane", "message"),
    [
        (
            "positon",
            "agents.vehicle (tests.config.standins:Vehicle) has no lane 'positon'; "
            "its lanes: alerts, forecast, position, status",
        ),
        (
            "status",
            "lane 'status' of agents.vehicle is a value lane; a source feeds a command lane",
        ),
    ],
)
def test_a_source_must_feed_an_existing_command_lane(lane: str, message: str) -> None:
    sources = [{"topic": "p", "route": "/vehicle/{key}", "lane": lane}]
    assert resolve_problems(sources=sources) == [("sources[0].lane", message)]


def test_a_source_lane_is_checked_on_the_agent_its_route_reaches() -> None:
    sources = [{"topic": "p", "route": "/tower/{key}", "lane": "vehicles"}]
    assert resolve_problems(sources=sources) == [
        (
            "sources[0].lane",
            "lane 'vehicles' of agents.tower is a join value lane; a source feeds a command lane",
        )
    ]


def test_a_lane_problem_names_a_dotted_agent_by_its_key_path() -> None:
    """As every key path does: agents.fleet.vehicle would read as key vehicle of agent fleet."""
    agents = {"fleet.vehicle": {"class": "tests.config.standins:Vehicle", "route": "/vehicle/:id"}}
    sources = [{"topic": "p", "route": "/vehicle/{key}", "lane": "status"}]
    sinks = [{"from": "/vehicle/:id#alert", "topic": "out"}]
    assert resolve_problems(agents=agents, sources=sources, sinks=sinks) == [
        (
            "sources[0].lane",
            "lane 'status' of agents['fleet.vehicle'] is a value lane; "
            "a source feeds a command lane",
        ),
        (
            "sinks[0].from",
            "agents['fleet.vehicle'] (tests.config.standins:Vehicle) has no lane 'alert'; "
            "its lanes: alerts, forecast, position, status",
        ),
    ]


@pytest.mark.parametrize(
    ("lane", "message"),
    [
        (
            "alert",
            "agents.vehicle (tests.config.standins:Vehicle) has no lane 'alert'; "
            "its lanes: alerts, forecast, position, status",
        ),
        (
            "forecast",
            "lane 'forecast' of agents.vehicle is a demand lane; "
            "it computes on request and has no changes to sink",
        ),
        (
            "position",
            "lane 'position' of agents.vehicle is a command lane; "
            "it passes commands to the agent and has no changes to sink",
        ),
    ],
)
def test_a_sink_must_read_an_existing_lane_that_changes(lane: str, message: str) -> None:
    sinks = [{"from": f"/vehicle/:id#{lane}", "topic": "out"}]
    assert resolve_problems(sinks=sinks) == [("sinks[0].from", message)]


def test_every_resolve_problem_is_reported_at_once() -> None:
    agents = {
        "vehicle": {"class": "tests.config.standins:Vehicle", "route": "/vehicle/:id"},
        "tower": {"class": "examples.nope:Tower", "route": "/tower/:id"},
    }
    sources = [
        {"topic": "p", "route": "/vehicle/{key}", "lane": "status"},
        {"topic": "p", "route": "/tower/{key}", "lane": "anything"},  # its class failed: skipped
    ]
    assert [path for path, _ in resolve_problems(agents=agents, sources=sources)] == [
        "agents.tower.class",
        "sources[0].lane",
    ]


def published_at(text: str) -> str:
    """``file:line`` of the line of the stand-ins holding ``text``."""
    source = Path(standins.__file__)
    number = source.read_text().splitlines().index(text) + 1
    return f"{source}:{number}"


@pytest.mark.parametrize("class_name", ["Alerting", "AlertingToo"])
def test_a_name_published_that_no_sink_declares_is_named_with_its_line(class_name: str) -> None:
    agents = {"probe": {"class": f"tests.config.standins:{class_name}", "route": "/p/:id"}}
    sinks = [{"publish": "alerts", "topic": "probe-alerts"}]
    where = published_at('        self.publish(topic="summaries", value=temp)')
    assert resolve_problems(agents=agents, sources=[], sinks=sinks) == [
        (
            "agents.probe.class",
            f"{class_name} calls self.publish('summaries') ({where}), but no sink declares "
            "`publish: summaries` (declared: alerts); add a sink for it",
        )
    ]
    sinks.append({"topic": "summaries"})  # (a topic's own name, when publish is not given)
    config = parse_config(document(agents=agents, sources=[], sinks=sinks), {})
    assert list(resolve_agents(config)) == ["probe"]


def test_check_config_returns_printable_lines(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "app: t\nbroker: {kind: embedded}\nagents:\n"
        "  vehicle: {class: 'tests.config.standins:Vehicle', route: /vehicle/:id}\n"
    )
    assert check_config(good, {}) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "app: t\nbroker: {kind: embedded}\nagents:\n"
        "  vehicle: {class: 'examples.nope:Vehicle', route: /vehicle/:id}\n"
    )
    assert check_config(bad, {}) == [
        "agents.vehicle.class: cannot import 'examples.nope:Vehicle' "
        "(No module named 'examples.nope')"
    ]
    assert check_config(tmp_path / "none.yaml", {}) == [
        f"{tmp_path / 'none.yaml'}: cannot read: No such file or directory"
    ]


def test_the_example_config_resolves_to_the_towers_agents() -> None:
    classes = resolve_agents(load_config(EXAMPLE_FILE, {}))
    assert sorted(classes) == ["device", "tower", "world"]


def test_a_raw_lane_sink_of_a_map_lane_is_refused() -> None:
    """Every change of a map lane is an object, which raw cannot write: each change
    failed its callback (before, went out as Python's spelling of a dict)."""
    sinks = [
        {"from": "/vehicle/:id#alerts", "topic": "out", "format": "raw"},
        {"from": "/vehicle/:id#status", "topic": "out2", "format": "raw"},  # (a value lane)
        {"from": "/tower/:id#vehicles", "topic": "out3", "format": "raw"},
    ]
    assert resolve_problems(sinks=sinks) == [
        (
            "sinks[0].format",
            "lane 'alerts' is a map lane, whose changes are objects "
            '({"update": key, "value": value}); raw writes bytes, text or numbers: '
            "use format json",
        ),
        (
            "sinks[2].format",
            "lane 'vehicles' is a join value lane, whose changes are objects "
            '({"update": key, "value": value}); raw writes bytes, text or numbers: '
            "use format json",
        ),
    ]
