"""Fixtures for multi-process scenarios: instances as real processes, cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.support import Instance


@pytest.fixture
def start_instance(tmp_path: Path) -> Iterator[Callable[..., Instance]]:
    """Start an instance of an app config (a dict) and wait until it is ready."""
    started: list[Instance] = []

    def start(config: dict[str, Any], name: str = "instance", ready: bool = True) -> Instance:
        instance = Instance(config, tmp_path, f"{name}-{len(started)}")
        started.append(instance)
        instance.start()
        if ready:
            instance.wait_ready()
        return instance

    yield start
    for instance in started:  # all at once: instances of one group leave it together
        instance.terminate()
    for instance in started:
        instance.stop()
