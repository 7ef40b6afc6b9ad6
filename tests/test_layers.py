"""The layer rule: imports inside swimstream point one way.

Each layer may import only the layers listed for it; the check reads every module's
import statements (including those under ``TYPE_CHECKING``), so a cycle or a shortcut
fails here before it can harden. Layers not yet listed fail the test, so a new package
must be placed in the table deliberately.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "swimstream"

# layer -> the swimstream layers it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "text": set(),
    "ratelimit": set(),
    "logfields": set(),
    "crdt": {"errors", "text"},
    "routing": {"errors"},
    "config": {"errors", "routing"},
    "agent": {"errors", "text", "crdt"},
    "runtime": {"errors", "text", "ratelimit", "crdt", "routing", "agent"},
    "testing": {"agent", "runtime", "streams"},
    "metrics": set(),
    "streams": {
        "errors",
        "text",
        "logfields",
        "ratelimit",
        "crdt",
        "routing",
        "config",
        "agent",
        "runtime",
        "metrics",
    },
    "web": {"errors", "ratelimit", "crdt", "routing", "agent", "runtime", "metrics"},
    "store": {"errors", "text", "logfields", "ratelimit", "crdt", "agent", "runtime", "streams"},
    "service": {
        "errors",
        "text",
        "logfields",
        "ratelimit",
        "crdt",
        "routing",
        "config",
        "agent",
        "runtime",
        "metrics",
        "streams",
        "store",
        "web",
    },
    "cli": {"errors", "text", "logfields", "ratelimit", "config", "runtime", "service", "store"},
    "__main__": {"cli"},
}


def layer_of(module_path: Path) -> str:
    relative = module_path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def swimstream_imports(module_path: Path) -> set[str]:
    tree = ast.parse(module_path.read_text(), filename=str(module_path))
    layers: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "swimstream" and len(parts) > 1:
                layers.add(parts[1])
    return layers


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("module_path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(module_path: Path) -> None:
    layer = layer_of(module_path)
    assert layer in ALLOWED, f"{layer} is not placed in the layer table of {__file__}"
    forbidden = swimstream_imports(module_path) - ALLOWED[layer] - {layer}
    assert not forbidden, f"{module_path.relative_to(PACKAGE)} imports {sorted(forbidden)}"
