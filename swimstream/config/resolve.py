"""Importing the agent classes a configuration names, and checking the lanes it uses.

A separate step from loading, because it runs user code (the agents' modules) and needs
them importable. What it checks is what only the classes know: that each ``class`` is an
agent class, that each source feeds a command lane that exists, that each lane sink
names a lane that exists and changes, and that each name a class passes to
``self.publish`` as a literal has a sink (:mod:`swimstream.config.publishes`).

Agent classes are recognised by the lanes they declare: a class attribute
``__swim_lanes__`` mapping each lane name to a lane spec whose ``kind`` is one of
:data:`LANE_KINDS`. The base class itself (``swimstream.Agent``) is refused as a route's
class, by the rule the plane applies too (:func:`swimstream.routing.is_base_class`). This
layer knows nothing else of the agent layer, so the check works on any class that
declares its lanes this way.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from swimstream.config.app import AppConfig
from swimstream.config.problems import Problem, format_path
from swimstream.config.publishes import published_names
from swimstream.config.topology import AgentConfig
from swimstream.errors import ConfigError
from swimstream.routing import is_base_class

LANE_KINDS = frozenset(
    {
        "command",
        "value",
        "map",
        "counter",
        "join_value",
        "join_map",
        "demand_value",
        "demand_map",
    }
)

# Lanes with no changes to stream to a sink, and why: a command lane hands each command to
# its agent's callback and keeps nothing; a demand lane computes a value when a client asks.
_NOT_SINKABLE = {
    "command": "is a command lane; it passes commands to the agent",
    "demand_value": "is a demand lane; it computes on request",
    "demand_map": "is a demand lane; it computes on request",
}


_OBJECT_CHANGES = frozenset({"map", "join_value", "join_map"})
"""Lanes (maps) whose every change is an object (``{"update": key, "value": value}``), which a
``format: raw`` lane sink cannot write: each would fail its callback."""


def _raw_problem(lane: str, kind: str) -> str:
    return (
        f"lane {lane!r} is a {kind.replace('_', ' ')} lane, whose changes are objects "
        '({"update": key, "value": value}); raw writes bytes, text or numbers: use format json'
    )


def resolve_agents(config: AppConfig) -> dict[str, type[Any]]:
    """Import every agent class; return them by agent name.

    Raises :class:`ConfigError` with every problem: classes that do not import or are not
    agent classes, source lanes that are missing or not command lanes, sink lanes that
    are missing or have no changes to stream (command and demand lanes).
    """
    classes, problems = import_agent_classes(config.agents)
    routes = config.agent_routes()
    for index, source in enumerate(config.sources):
        found = routes.lookup(source.route.skeleton())
        if found is not None and found.target in classes:
            problem = _lane_problem(config, classes, found.target, source.lane, for_source=True)
            if problem is not None:
                problems.append((f"sources[{index}].lane", problem))
    for index, sink in enumerate(config.sinks):
        if sink.from_ is None:
            continue
        target = routes.get(sink.from_.route)
        if target is not None and target in classes:
            problem = _lane_problem(config, classes, target, sink.from_.lane, for_source=False)
            if problem is not None:
                problems.append((f"sinks[{index}].from", problem))
            elif sink.format == "raw":
                kind = getattr(classes[target].__swim_lanes__[sink.from_.lane], "kind", None)
                if kind in _OBJECT_CHANGES:
                    problems.append((f"sinks[{index}].format", _raw_problem(sink.from_.lane, kind)))
    problems.extend(_publish_problems(config, classes))
    if problems:
        raise ConfigError(problems=problems)
    return classes


def _publish_problems(config: AppConfig, classes: Mapping[str, type[Any]]) -> list[Problem]:
    """A problem for each name an agent class publishes to that no sink declares."""
    declared = {name for sink in config.sinks if (name := sink.publish_name) is not None}
    known = ", ".join(sorted(declared)) or "none"
    problems: list[Problem] = []
    for agent, cls in classes.items():
        for name, where in dict.fromkeys(published_names(cls)):
            if name not in declared:
                problems.append(
                    (
                        format_path(["agents", agent, "class"]),
                        f"{cls.__name__} calls self.publish({name!r}) ({where}), but no sink "
                        f"declares `publish: {name}` (declared: {known}); add a sink for it",
                    )
                )
    return problems


def import_agent_classes(
    agents: Mapping[str, AgentConfig],
) -> tuple[dict[str, type[Any]], list[Problem]]:
    """Import the class of each agent: those that are agent classes by agent name, and
    a problem (at ``agents.<name>.class``) for each that does not import or is not one.

    Apart from :func:`resolve_agents` so that ``swimstream check`` can import the classes
    of the agents whose entries are valid when other keys are not.
    """
    problems: list[Problem] = []
    classes: dict[str, type[Any]] = {}
    for name, agent in agents.items():
        path = format_path(["agents", name, "class"])
        try:
            cls = _import_class(agent.class_path)
        except ImportError as exc:
            problems.append((path, str(exc)))
            continue
        if not isinstance(getattr(cls, "__swim_lanes__", None), Mapping):
            problems.append(
                (
                    path,
                    f"{agent.class_path} is not an agent class (no __swim_lanes__; "
                    "agent classes subclass swimstream.Agent)",
                )
            )
            continue
        if is_base_class(cls):
            problems.append(
                (
                    path,
                    f"{agent.class_path} is the base class of agents, not an agent: "
                    "name your subclass of it, which declares the lanes",
                )
            )
            continue
        classes[name] = cls
    return classes, problems


def _import_class(class_path: str) -> type[Any]:
    """The class named ``module:Class``; :class:`ImportError` saying why it cannot be had."""
    module_name, _, attribute_path = class_path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        top = module_name.partition(".")[0]
        if isinstance(exc, ModuleNotFoundError) and exc.name == top:
            # The usual cause: swimstream started from another directory than the app's.
            raise ImportError(
                f"cannot import {class_path!r} ({exc}; modules are imported from the "
                f"working directory and PYTHONPATH: run swimstream from the directory that "
                f"holds {top}, or add that directory to PYTHONPATH)"
            ) from exc
        raise ImportError(f"cannot import {class_path!r} ({exc})") from exc
    except (Exception, SystemExit) as exc:  # the module itself raised while importing
        # SystemExit too: a module that calls sys.exit() (a script's main() run at import,
        # an argparse error) would otherwise end `check` or `run` with its own status and
        # no word of which agent's class did it, instead of exit 2 naming the key.
        raise ImportError(f"cannot import {class_path!r} ({type(exc).__name__}: {exc})") from exc
    for attribute in attribute_path.split("."):
        if not hasattr(target, attribute):
            raise ImportError(
                f"cannot import {class_path!r} ({module_name!r} has no attribute {attribute!r})"
            )
        target = getattr(target, attribute)
    if not isinstance(target, type):
        raise ImportError(f"{class_path!r} is not a class (it is {type(target).__name__})")
    return target


def _lane_problem(
    config: AppConfig, classes: Mapping[str, type[Any]], agent: str, lane: str, *, for_source: bool
) -> str | None:
    """What is wrong with a source feeding, or a sink reading, ``lane`` of ``agent``."""
    lanes: Mapping[str, Any] = classes[agent].__swim_lanes__
    where = format_path(["agents", agent])
    if lane not in lanes:
        known = ", ".join(sorted(lanes)) or "none"
        return (
            f"{where} ({config.agents[agent].class_path}) has no lane {lane!r}; its lanes: {known}"
        )
    kind = getattr(lanes[lane], "kind", None)
    if for_source and kind != "command":
        shown = kind.replace("_", " ") if isinstance(kind, str) else "unknown"
        return f"lane {lane!r} of {where} is a {shown} lane; a source feeds a command lane"
    if not for_source and kind in _NOT_SINKABLE:
        return f"lane {lane!r} of {where} {_NOT_SINKABLE[kind]} and has no changes to sink"
    return None
