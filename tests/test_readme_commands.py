"""The commands the README names are there: each `make` target and variable in the
Makefile, each `swimstream` command line parses, and each option of a bench script, or
named on its own, is one a command or a bench script takes.

Read from README.md itself, so a target, command or option renamed or removed in the
code fails here rather than in the hands of a user who types what the README says.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from swimstream.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FOREIGN = ("mypy", "docker", "-n 2")
"""Spans that hold another tool's options (mypy's, Docker Compose's, pytest's)."""


def spans() -> list[str]:
    """The README's inline code spans (a line break in one read as a space) and the
    lines of its shell blocks."""
    text = README.read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
    inline = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    lines = [line.split("#", 1)[0] for block in blocks for line in block.splitlines()]
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", inline) + lines]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def bench_options(script: str) -> set[str]:
    return set(re.findall(r"[\"'](--[a-z][a-z-]*)[\"']", (ROOT / script).read_text()))


def test_every_make_target_and_variable_the_readme_names_is_in_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    variables = set(re.findall(r"\$\(([A-Z_]+)\)", makefile))
    named = [span for span in spans() if span.startswith("make ")]
    assert named
    for span in named:
        words = shlex.split(span)[1:]
        assert {w for w in words if "=" not in w} <= targets, span
        assert {w.split("=", 1)[0] for w in words if "=" in w} <= variables, span


@pytest.mark.parametrize(
    "span",
    [s for s in spans() if re.match(r"(\S*/)?swimstream (run|check|inspect|demo) -", s)],
)
def test_each_swimstream_command_line_the_readme_shows_parses(span: str) -> None:
    """(A command named alone, `swimstream check`, is prose rather than a command line.)"""
    words = [w for w in shlex.split(span.replace("[", "").replace("]", "")) if w != "--help"]
    try:
        build_parser().parse_args(words[1:])
    except SystemExit as stop:
        pytest.fail(f"{span!r} does not parse (exit {stop.code})")


def test_make_demo_args_the_readme_shows_are_demo_options() -> None:
    shown = [s for s in spans() if s.startswith("make demo") and "DEMO_ARGS=" in s]
    assert shown
    for span in shown:
        args = shlex.split(shlex.split(span.split("DEMO_ARGS=", 1)[1])[0])
        build_parser().parse_args(["demo", *args])


def test_every_option_the_readme_names_is_taken_by_a_command_or_bench_script() -> None:
    scripts = sorted({p.relative_to(ROOT).as_posix() for p in (ROOT / "bench").glob("*.py")})
    ours = {option for sub in subcommands().values() for option in sub._option_string_actions}
    anywhere = ours.union(*(bench_options(script) for script in scripts))
    wrong = []
    for span in spans():
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", span))
        if not options or any(span.startswith(tool) or tool in span for tool in FOREIGN):
            continue
        named = re.findall(r"bench/\w+\.py", span)
        takes = bench_options(named[0]) if named else anywhere
        wrong += [f"{option} in {span!r}" for option in sorted(options - takes)]
    assert not wrong, wrong
