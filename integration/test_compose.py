"""``docker compose up``, as far as this machine can take it.

The first test runs the compose file's ``swimstream`` and ``simulator`` services as the
containers would (their commands and environments, the image's program), as real
processes next to the embedded Kafka in place of the ``kafka`` service: the fleet feeds
the service, every reading shows in the towers' and the world's lanes, and both stop
cleanly on ``docker stop``'s signal. The second brings the stack itself up and needs a
Docker engine; it skips cleanly where none answers, as on the build machines.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka, free_ports
from examples.towers.simulator import Fleet, arguments
from integration.support import REPO, Instance, json_value, key_text, wait_until
from tests.examples.test_towers import expected_views
from tests.support.deployment import read_compose, read_dockerfile, service_argv, service_env
from tests.support.kafka import read_topic

SERVICES = read_compose()
IMAGE = read_dockerfile()
KAFKA_IN_COMPOSE = service_env(SERVICES["swimstream"])["KAFKA_BOOTSTRAP"]


class ServiceProcess(Instance):
    """One compose service's command, run here with the checkout's interpreter."""

    def __init__(self, name: str, workdir: Path, bootstrap: str) -> None:
        self.name = name
        self.workdir = workdir
        self.web_port, mesh_port = free_ports(2)
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        service = SERVICES[name]
        argv = [word.replace(KAFKA_IN_COMPOSE, bootstrap) for word in service_argv(service, IMAGE)]
        program = {"swimstream": [sys.executable, "-m", "swimstream"], "python": [sys.executable]}
        self.argv = [*program[argv[0]], *argv[1:]]
        self.args = argv[3:] if argv[:2] == ["python", "-m"] else argv[1:]
        env = {k: v.replace(KAFKA_IN_COMPOSE, bootstrap) for k, v in service_env(service).items()}
        self.env = {
            **os.environ,
            **IMAGE.env,
            **env,
            "PYTHONPATH": str(REPO),
            # What differs from the container: its own volume, ports on loopback.
            "SWIMSTREAM_DATA": str(workdir / "data"),
            "SWIMSTREAM_WEB": f"127.0.0.1:{self.web_port}",
            "SWIMSTREAM_MESH": f"127.0.0.1:{mesh_port}",
        }

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            cwd=REPO,  # the image's workdir holds the checkout's files
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self


def test_the_compose_services_run_the_towers_app_on_a_kafka_broker(
    kafka_broker: EmbeddedKafka, tmp_path: Path
) -> None:
    service = ServiceProcess("swimstream", tmp_path, kafka_broker.bootstrap).start()
    simulator = ServiceProcess("simulator", tmp_path, kafka_broker.bootstrap)
    try:
        service.wait_ready(timeout=90)
        simulator.start()
        wait_until(
            lambda: service.metric("swimstream_records_in_total") >= 5000,
            timeout=60,
            what=f"readings from the simulator\n{simulator.log_tail()}\n{service.log_tail()}",
        )
        simulator.signal(signal.SIGTERM)  # docker stop
        assert simulator.wait_exit(15) == 0, simulator.log_tail()
        stopped = re.search(r"stopped after ([\d,]+) readings", simulator.log_path.read_text())
        assert stopped is not None, simulator.log_tail()
        sent = int(stopped.group(1).replace(",", ""))

        options = arguments().parse_args(simulator.args)
        fleet = Fleet(options.devices, seed=options.seed)
        readings = [fleet.reading()[1] for _ in range(sent)]
        summaries, totals = expected_views(readings)
        # Every view at once: the world's totals can match while the service, behind the
        # simulator on a slow machine, still has readings to route (the last ones need
        # not move a total) and while a tower's hottest device is still on its way over
        # the tower's join. A lost, doubled or misrouted reading keeps them apart for good.
        expected: dict[str, Any] = {"records in": sent, "/world": totals, **summaries}
        shown: dict[str, Any] = {}

        def every_view_right() -> bool:
            shown["records in"] = service.metric("swimstream_records_in_total")
            shown["/world"] = service.lane("/world", "totals")
            shown.update((t, service.lane(f"/tower/{t}", "summary")) for t in summaries)
            return shown == expected

        wait_until(
            every_view_right,
            timeout=60,
            what=lambda: f"the views of {sent} readings {expected}; they show {shown}",
        )
        assert service.metric("swimstream_dead_letters_total") == 0

        service.signal(signal.SIGTERM)  # docker stop: drain inside its 10 s grace period
        assert service.wait_exit(10) == 0, service.log_tail()
        latest = {
            key_text(m): json_value(m)
            for m in read_topic(kafka_broker.bootstrap, "tower-summaries")
        }
        assert latest == summaries  # the insight topic ends at every tower's summary
    finally:
        simulator.stop()
        service.stop()


def _docker_engine() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _docker_engine(), reason="no Docker engine answers here")
def test_docker_compose_up_serves_the_towers_app() -> None:  # pragma: no cover - needs Docker
    compose = ["docker", "compose", "--project-name", "swimstream-test"]
    subprocess.run(
        [*compose, "up", "--detach", "--build", "--wait"], cwd=REPO, check=True, timeout=900
    )
    try:

        def world() -> dict[str, Any]:
            url = "http://127.0.0.1:9001/world?lane=totals"
            with urllib.request.urlopen(url, timeout=5) as response:
                return dict(json.load(response))

        wait_until(lambda: world()["devices"] > 100, timeout=120, what="the world's totals")
        summaries = read_topic("localhost:9092", "tower-summaries")
        assert summaries, "no tower summary on the insight topic"
    finally:
        subprocess.run([*compose, "down", "--volumes"], cwd=REPO, timeout=300)
