"""A broker the instance cannot use: the log says why, in the user's terms.

Each case runs ``swimstream run`` against a real broker (Tansu, with SASL where it is
about logins; pulsar-lite; pulsar-lite's HTTP metrics port) set up wrongly the way
people set it up wrongly, and reads what an operator reads: the log, the exit status,
``/readyz``. A failure that waiting does not mend (a login refused, TLS against a
plaintext port, another protocol at the address) stops the start with exit 1 and the
reason on the last line; one that it may mend (a host name that does not resolve yet,
a listener that seems to want a login) is retried, each waiting line naming the cause.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from connectors.embedded import EmbeddedKafka, EmbeddedPulsar
from connectors.listener_probe import Listener, probe_listener
from integration.support import Instance, wait_until

PASSWORD = "hunter2-not-this-one"
USER = "probe-user-7f3a"


class AuthenticatingTansu(EmbeddedKafka):
    """Tansu with ``--authentication``: every client must log in with SCRAM first (it
    offers no PLAIN), and no user exists, so every login fails as a wrong password
    does."""

    def _command(self, binary: str, ports: Sequence[int], work_dir: Path) -> list[str]:
        return [*super()._command(binary, ports, work_dir), "--authentication"]

    def _probe(self, timeout: float) -> bool:
        return probe_listener(self.bootstrap, 9092, timeout) is Listener.KAFKA_WANTS_SASL


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthenticatingTansu]:
    with AuthenticatingTansu(work_dir=tmp_path_factory.mktemp("sasl-tansu")) as broker:
        yield broker


def app(broker: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "app": name,
        "broker": broker,
        "agents": {"account": {"class": "integration.apps:Ledger", "route": "/account/:id"}},
        "sources": [{"topic": f"{name}.entries", "route": "/account/{key}", "lane": "entry"}],
        "sinks": [{"publish": "processed", "topic": f"{name}.processed"}],
        "processing": "at-least-once",
    }


def stopped_with(instance: Instance) -> str:
    """The reason an instance that stopped its start gave (it must exit 1 by itself;
    a start that waits instead fails the test after a generous minute)."""
    status = instance.wait_exit(timeout=90)
    log = instance.log_path.read_text()
    assert status == 1, log
    errors = [json.loads(line) for line in log.splitlines() if line.startswith('{"ts"')]
    last = [line for line in errors if line["level"] == "error"][-1]
    assert last["logger"] == "swimstream.cli", log
    assert PASSWORD not in log and USER not in log, log
    return str(last["message"])


def waiting_reason(instance: Instance, words: str) -> str:
    """The start's reason for waiting, once it says ``words``, from ``/readyz``."""
    wait_until(lambda: words in instance.log_tail(), 90, f"a waiting line saying {words!r}")
    status, body = instance.request("GET", "/readyz")
    assert status == 503, body
    assert instance.request("GET", "/healthz")[0] == 200  # alive: no restart is asked for
    return str(body["checks"]["start"])


def sasl(mechanism: str) -> dict[str, str]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": USER,
        "sasl.password": PASSWORD,
    }


def test_a_refused_login_stops_the_start_naming_the_settings_not_their_values(
    sasl_kafka: AuthenticatingTansu, start_instance: Callable[..., Instance]
) -> None:
    """It used to wait forever with "is the broker running and reachable from here?"."""
    broker = {"kind": "kafka", "bootstrap": sasl_kafka.bootstrap, "settings": sasl("SCRAM-SHA-512")}
    instance = start_instance(app(broker, "misconf-login"), ready=False)
    reason = stopped_with(instance)
    assert reason.startswith(
        f"authentication failed at the Kafka broker at {sasl_kafka.bootstrap} "
        "(security.protocol SASL_PLAINTEXT, sasl.mechanism SCRAM-SHA-512): check "
        "sasl.username and sasl.password"
    ), reason


@pytest.mark.parametrize("secured", [True, False], ids=["sasl-broker", "plaintext-broker"])
def test_a_mechanism_the_broker_does_not_enable_stops_the_start_naming_it(
    secured: bool,
    sasl_kafka: AuthenticatingTansu,
    kafka_broker: EmbeddedKafka,
    start_instance: Callable[..., Instance],
) -> None:
    """Tansu's SASL offers SCRAM only; a plaintext listener refuses any handshake."""
    bootstrap = sasl_kafka.bootstrap if secured else kafka_broker.bootstrap
    broker = {"kind": "kafka", "bootstrap": bootstrap, "settings": sasl("PLAIN")}
    instance = start_instance(app(broker, f"misconf-mechanism-{secured}"), ready=False)
    reason = stopped_with(instance)
    assert reason.startswith(
        f"the Kafka broker at {bootstrap} does not accept sasl.mechanism PLAIN: set "
        "sasl.mechanism to one it enables"
    ), reason


def test_tls_against_a_plaintext_listener_stops_the_start_saying_so(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    """Tansu reads the TLS hello as the start of a huge request and waits: librdkafka
    said nothing at all, and the start waited with "is the broker running"."""
    broker = {
        "kind": "kafka",
        "bootstrap": kafka_broker.bootstrap,
        "settings": {"security.protocol": "SSL"},
    }
    instance = start_instance(app(broker, "misconf-tls"), ready=False)
    reason = stopped_with(instance)
    assert reason.startswith(
        f"the Kafka listener at {kafka_broker.bootstrap} does not speak TLS, but "
        "security.protocol is SSL: set security.protocol to PLAINTEXT"
    ), reason


def test_a_bootstrap_at_an_http_port_stops_the_start_saying_what_answers(
    pulsar_broker: EmbeddedPulsar, start_instance: Callable[..., Instance]
) -> None:
    http = urllib.parse.urlsplit(pulsar_broker.metrics_url).netloc  # (pulsar-lite's metrics)
    instance = start_instance(
        app({"kind": "kafka", "bootstrap": http}, "misconf-http"), ready=False
    )
    reason = stopped_with(instance)
    assert reason.startswith(f"{http} is an HTTP server, not a Kafka broker"), reason


def test_a_bootstrap_at_a_pulsar_port_stops_the_start_saying_so(
    pulsar_broker: EmbeddedPulsar, start_instance: Callable[..., Instance]
) -> None:
    address = pulsar_broker.address
    broker = {"kind": "kafka", "bootstrap": address}
    instance = start_instance(app(broker, "misconf-pulsar-port"), ready=False)
    reason = stopped_with(instance)
    assert reason.startswith(f"{address} is a Pulsar broker, not a Kafka broker"), reason


def test_a_plaintext_client_at_a_sasl_listener_waits_saying_it_likely_wants_a_login(
    sasl_kafka: AuthenticatingTansu, start_instance: Callable[..., Instance]
) -> None:
    broker = {"kind": "kafka", "bootstrap": sasl_kafka.bootstrap}
    instance = start_instance(app(broker, "misconf-no-login"), ready=False)
    reason = waiting_reason(instance, "likely requires SASL authentication")
    assert "it likely requires SASL authentication (security.protocol SASL_PLAINTEXT" in reason
    # Nor is it said beside the cause: the client's error events during a try went to
    # the log as "_ALL_BROKERS_DOWN; is the broker running and reachable from here?".
    log = instance.log_path.read_text()
    assert "is the broker running" not in reason and "is the broker running" not in log, log


def test_a_host_name_that_does_not_resolve_is_waited_for_and_named(
    start_instance: Callable[..., Instance],
) -> None:
    """A name may appear later (a Kubernetes service created after the pod)."""
    broker = {"kind": "kafka", "bootstrap": "no-such-broker.invalid:9092"}
    instance = start_instance(app(broker, "misconf-dns"), ready=False)
    reason = waiting_reason(instance, "does not resolve")
    assert "the host name no-such-broker.invalid does not resolve" in reason, reason


@pytest.mark.parametrize("target", ["kafka", "http"])
def test_a_pulsar_service_url_at_another_service_stops_the_start_saying_what_answers(
    target: str,
    kafka_broker: EmbeddedKafka,
    pulsar_broker: EmbeddedPulsar,
    start_instance: Callable[..., Instance],
) -> None:
    """The client connects lazily: it used to log "connected to Pulsar", then fail the
    first subscription 30 s later with "TimeOut ... is it running and reachable"."""
    if target == "kafka":
        address, what = kafka_broker.bootstrap, "is a Kafka listener, not a Pulsar broker"
    else:
        address = urllib.parse.urlsplit(pulsar_broker.metrics_url).netloc
        what = "is an HTTP server, not a Pulsar broker"
    broker = {"kind": "pulsar", "service_url": f"pulsar://{address}"}
    instance = start_instance(app(broker, f"misconf-pulsar-{target}"), ready=False)
    reason = stopped_with(instance)
    assert reason.startswith(f"no Pulsar broker answers at pulsar://{address}: {address} {what}")
    assert "connected to Pulsar" not in instance.log_path.read_text()


def test_the_probe_tells_listeners_apart(
    kafka_broker: EmbeddedKafka, pulsar_broker: EmbeddedPulsar, sasl_kafka: AuthenticatingTansu
) -> None:
    http = urllib.parse.urlsplit(pulsar_broker.metrics_url).netloc
    with socket.socket() as nobody:
        nobody.bind(("127.0.0.1", 0))  # bound, never listening: refused
        refused = f"127.0.0.1:{nobody.getsockname()[1]}"
        found = {
            address: probe_listener(address, 9092, 3.0)
            for address in (kafka_broker.bootstrap, sasl_kafka.bootstrap, pulsar_broker.address)
        }
        assert found == {
            kafka_broker.bootstrap: Listener.KAFKA,
            sasl_kafka.bootstrap: Listener.KAFKA_WANTS_SASL,
            pulsar_broker.address: Listener.PULSAR,
        }
        assert probe_listener(http, 9092, 3.0) is Listener.HTTP
        assert probe_listener(refused, 9092, 3.0) is Listener.UNREACHABLE
        assert probe_listener(pulsar_broker.address, 6650, 3.0, "pulsar") is Listener.PULSAR
