"""The Docker deployment as data: what ``docker-compose.yml`` and ``Dockerfile`` say.

No Docker engine runs on the build machines, so the tests check the deployment by
doing what the image and the compose file would do, with this checkout's interpreter:
the image's files copied as its ``COPY`` lines say, each service's command run with its
environment. Only the directives the project's Dockerfile uses are read.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Image:
    """The parts of the Dockerfile that decide what runs and with which files."""

    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)

    def build_into(self, root: Path) -> Path:
        """Copy the checkout's files as the ``COPY`` lines do; returns the workdir in ``root``."""
        workdir = root / self.workdir.lstrip("/")
        workdir.mkdir(parents=True, exist_ok=True)
        for sources, dest in self.copies:
            target = workdir / dest if not dest.startswith("/") else root / dest.lstrip("/")
            for source in sources:
                path = REPO / source
                if path.is_dir():
                    shutil.copytree(
                        path,
                        target,
                        ignore=shutil.ignore_patterns("__pycache__"),
                        dirs_exist_ok=True,
                    )
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target / path.name)
        return workdir

    def rooted_env(self, root: Path) -> dict[str, str]:
        """The image's ``ENV`` with absolute paths moved under ``root``."""
        return {
            k: str(root / v.lstrip("/")) if v.startswith("/") else v for k, v in self.env.items()
        }


def read_dockerfile(path: Path = DOCKERFILE) -> Image:
    """Parse WORKDIR, ENV, COPY, ENTRYPOINT and CMD (continuation lines joined)."""
    image = Image()
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        directive, _, rest = line.partition(" ")
        directive = directive.upper()
        if directive == "WORKDIR":
            image.workdir = rest.strip()
        elif directive == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                image.env[name] = value
        elif directive == "COPY":
            *sources, dest = shlex.split(rest)
            image.copies.append((sources, "" if dest in ("./", ".") else dest.rstrip("/")))
        elif directive == "ENTRYPOINT":
            image.entrypoint = json.loads(rest)
        elif directive == "CMD":
            image.cmd = json.loads(rest)
    return image


def read_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file's ``services`` mapping."""
    document = yaml.safe_load(path.read_text())
    services = document["services"]
    assert isinstance(services, dict)
    return services


def service_argv(service: dict[str, Any], image: Image) -> list[str]:
    """The argv a service's container runs: entrypoint and command, compose over image."""
    entrypoint = service.get("entrypoint", image.entrypoint)
    command = service.get("command", image.cmd if "entrypoint" not in service else [])
    return [*_words(entrypoint), *_words(command)]


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment``, as a mapping of strings."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(k): str(v) for k, v in environment.items()}


def _words(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
