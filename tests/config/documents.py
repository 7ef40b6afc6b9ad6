"""Configuration documents for the tests, and a helper that returns their problems."""

from collections.abc import Mapping
from typing import Any

from swimstream.config import load_config, parse_config, problem_lines
from swimstream.errors import ConfigError

# The example configuration of the project's design notes (DESIGN.md, kept outside this
# repository), verbatim.
DESIGN_EXAMPLE = """\
app: traffic
broker: {kind: kafka, bootstrap: localhost:9092}   # kind: embedded starts a local broker
agents:
  vehicle: {class: examples.traffic:Vehicle, route: /vehicle/:id}
sources:
  - topic: vehicle-positions
    route: /vehicle/{key}            # or {payload.vehicle_id}
    lane: position                   # command lane that receives the event
sinks:
  - from: /vehicle/:id#alerts        # every change of this lane...
    topic: vehicle-alerts            # ...becomes a record here, keyed by the agent id
mesh: {listen: 0.0.0.0:7001}
store: {path: ./data}
web: {listen: 0.0.0.0:9001}
"""


def document(**parts: Any) -> dict[str, Any]:
    """A small valid document (two agents fed by stand-in classes), with ``parts`` replaced."""
    base: dict[str, Any] = {
        "app": "traffic",
        "broker": {"kind": "kafka", "bootstrap": "localhost:9092"},
        "agents": {
            "vehicle": {"class": "tests.config.standins:Vehicle", "route": "/vehicle/:id"},
            "tower": {"class": "tests.config.standins:Tower", "route": "/tower/:id"},
        },
        "sources": [
            {"topic": "vehicle-positions", "route": "/vehicle/{key}", "lane": "position"},
        ],
        "sinks": [{"from": "/vehicle/:id#alerts", "topic": "vehicle-alerts"}],
    }
    base.update(parts)
    return base


def problems(source: Mapping[str, Any] | str, env: Mapping[str, str] | None = None) -> list[str]:
    """The problem lines of a document or YAML text; fails the test if it is valid."""
    try:
        if isinstance(source, str):
            load_config(source, env or {})
        else:
            parse_config(source, env or {})
    except ConfigError as exc:
        return problem_lines(exc.problems)
    raise AssertionError("the configuration is valid")
