"""The README's configuration reference is generated from the models, and current."""

import importlib.machinery
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_reference_is_the_current_rendering() -> None:
    path = str(ROOT / "scripts" / "config-reference")
    loader = importlib.machinery.SourceFileLoader("config_reference", path)
    spec = importlib.util.spec_from_loader("config_reference", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    assert module.updated(readme) == readme, "run scripts/config-reference to regenerate it"
