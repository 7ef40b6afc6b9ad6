"""Keys the config checks and keeps for parts not built yet: the mesh, standby replicas.

They are accepted so that a config written for the mesh stays valid once it exists, but
today they change nothing, and a key that is set and silently ignored misleads: with
``store.standby: 2`` an operator counts on standby replicas that never run. So the
service warns at start about each one set to another value than its default
(:func:`unbuilt_settings` lists them; the README's reference says "not built yet").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel

from swimstream.config.app import AppConfig

UNBUILT: Final[Mapping[str, str]] = {
    "mesh.listen": "nothing listens on it",
    "mesh.advertise": "no instance dials another",
    "mesh.members": "no instance dials another",
    "mesh.heartbeat_interval": "no peer is sent heartbeats",
    "mesh.peer_timeout": "no peer is watched",
    "store.standby": "no standby replicas run",
}
"""Each key with no effect yet, and what does not happen."""


def unbuilt_settings(config: AppConfig) -> list[tuple[str, str, str]]:
    """``(key path, value, what does not happen)`` for each key of :data:`UNBUILT` that
    ``config`` sets to another value than its default."""
    found: list[tuple[str, str, str]] = []
    for key, effect in UNBUILT.items():
        part_name, field = key.split(".")
        part = getattr(config, part_name)
        assert isinstance(part, BaseModel)
        value = getattr(part, field)
        if value != getattr(type(part).model_validate({}), field):
            shown = ", ".join(value) if isinstance(value, tuple) else str(value)
            found.append((key, shown, effect))
    return found
