"""Where ``swimstream demo`` puts its dashboard: a second demo must not fail on the first
one's port, and a ``--web`` that cannot be had is named as the user wrote it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from swimstream.cli.demo import dashboard_address
from swimstream.errors import SwimstreamError
from tests.cli.test_check import swimstream


@pytest.fixture
def taken() -> Iterator[str]:
    """An address another process listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_the_default_address_while_it_is_free() -> None:
    default = free_address()
    assert dashboard_address(None, default=default) == default


def test_a_busy_default_gives_way_to_any_free_port(
    taken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dashboard_address(None, default=taken) == "127.0.0.1:0"
    assert f"{taken} is in use (another demo?)" in capsys.readouterr().out


def test_a_busy_address_asked_for_is_refused_naming_the_option(taken: str) -> None:
    with pytest.raises(SwimstreamError) as refused:
        dashboard_address(taken)
    assert str(refused.value) == (
        f"--web {taken}: cannot listen there (address already in use): pass another "
        "address, such as --web 127.0.0.1:0 for any free port "
        "(make demo DEMO_ARGS='--web 127.0.0.1:0')"
    )


def test_the_demo_on_a_busy_port_exits_1_naming_web(taken: str) -> None:
    """(It said ``web.listen: cannot listen on ...``, a config key the demo's user never
    wrote, with nothing on what to do.)"""
    result = swimstream("demo", "--web", taken, "--log-format", "text")
    assert result.returncode == 1, result.stderr
    assert f"swimstream: --web {taken}: cannot listen there" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "Tansu" not in result.stderr, result.stderr
