"""The app configuration: YAML in, frozen and validated models out.

* :func:`load_config` — YAML file or text plus an environment mapping, to an
  :class:`AppConfig`; every problem is reported at once as a :class:`ConfigError`
  whose ``problems`` are ``(key path, message)`` pairs.
* :func:`resolve_agents` — imports the agent classes and checks the lanes that sources
  and sinks name (a separate step: it runs user code).
* :func:`load_config_file` — :func:`load_config` of a file, naming with its problems
  the agent classes that do not import: what ``swimstream run`` loads with.
* :func:`check_config` — both, as printable lines: what ``swimstream check`` shows.
* :func:`render_reference` — the Markdown reference of every key, from the models.
* :func:`unbuilt_settings` — the keys set that have no effect yet, for a warning.

The environment is read by the caller, once, at the entry point. This package imports
nothing of swimstream but its exception tree and the pure routing package.
"""

from swimstream.config.app import AppConfig
from swimstream.config.broker import BrokerConfig, Protocol
from swimstream.config.client_settings import (
    CLIENT_OWNED_SETTINGS,
    CONSUMER_OWNED_SETTINGS,
    PRODUCER_OWNED_SETTINGS,
    RESERVED_SETTINGS,
    Setting,
    SettingsCheck,
)
from swimstream.config.loader import (
    check_config,
    load_config,
    load_config_file,
    parse_config,
    problem_lines,
    read_yaml,
)
from swimstream.config.reference import documented_keys, render_reference
from swimstream.config.resolve import LANE_KINDS, resolve_agents
from swimstream.config.service import MeshConfig, ProcessingConfig, StoreConfig, WebConfig
from swimstream.config.topology import AgentConfig, LaneRef, SinkConfig, SourceConfig
from swimstream.config.unbuilt import unbuilt_settings
from swimstream.config.values import parse_duration, split_address

__all__ = [
    "CLIENT_OWNED_SETTINGS",
    "CONSUMER_OWNED_SETTINGS",
    "LANE_KINDS",
    "PRODUCER_OWNED_SETTINGS",
    "RESERVED_SETTINGS",
    "AgentConfig",
    "AppConfig",
    "BrokerConfig",
    "LaneRef",
    "MeshConfig",
    "ProcessingConfig",
    "Protocol",
    "Setting",
    "SettingsCheck",
    "SinkConfig",
    "SourceConfig",
    "StoreConfig",
    "WebConfig",
    "check_config",
    "documented_keys",
    "load_config",
    "load_config_file",
    "parse_config",
    "parse_duration",
    "problem_lines",
    "read_yaml",
    "render_reference",
    "resolve_agents",
    "split_address",
    "unbuilt_settings",
]
