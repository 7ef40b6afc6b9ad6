"""The towers example's agents as a YAML ``agents`` section, for tests that run it."""

from typing import Any

TOWERS_AGENTS: dict[str, dict[str, Any]] = {
    "device": {"class": "examples.towers.app:Device", "route": "/device/:id"},
    "tower": {"class": "examples.towers.app:Tower", "route": "/tower/:id"},
    "world": {"class": "examples.towers.app:World", "route": "/world"},
}
"""Copy before changing it (``dict(TOWERS_AGENTS)``): tests share it."""
