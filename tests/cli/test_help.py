"""``--help`` of every command, as users read it: examples that parse, exit statuses."""

from __future__ import annotations

import re
import shlex

import pytest

from swimstream.cli import build_parser
from swimstream.cli.help_text import COMMANDS, EPILOG
from tests.cli.test_check import swimstream

COMMAND_NAMES = ["run", "check", "inspect", "demo"]


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_each_command_help_has_examples_and_its_exit_statuses(command: str) -> None:
    """(Only the top-level help had examples and exit statuses: `run --help` said
    nothing of what 2 means, and named its file option CONFIG.)"""
    result = swimstream(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "\nexamples:\n  swimstream " + command in result.stdout, result.stdout
    assert "\nexit status: 0 " in result.stdout, result.stdout
    assert "2 invalid" in result.stdout, result.stdout


def example_lines(text: str) -> list[list[str]]:
    """The command of each example line (the words up to the comment's column)."""
    commands = []
    for line in text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines():
        words = re.split(r"\s{2,}", line.strip())[0]
        argv = [w for w in shlex.split(words) if "=" not in w or w.startswith("-")]
        assert argv[0] == "swimstream", line
        commands.append(argv[1:])
    return commands


@pytest.mark.parametrize("text", [EPILOG, *COMMANDS.values()])
def test_every_example_parses(text: str) -> None:
    parser = build_parser()
    for argv in example_lines(text):
        parser.parse_args(argv)  # (a usage error exits 2, failing the test)


def test_metavars_say_what_to_give() -> None:
    helps = {command: swimstream(command, "--help").stdout for command in COMMAND_NAMES}
    assert "--config FILE" in helps["run"] and "--config FILE" in helps["check"]
    assert "--store PATH" in helps["inspect"] and "--node URI" in helps["inspect"]
    assert "--web HOST:PORT" in helps["demo"] and "--rate PER_SECOND" in helps["demo"]


def test_no_command_prints_the_whole_help_and_exits_2() -> None:
    result = swimstream()
    assert result.returncode == 2
    assert "examples:" in result.stderr and "exit status:" in result.stderr, result.stderr
