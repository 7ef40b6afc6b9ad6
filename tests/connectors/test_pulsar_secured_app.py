"""A secured Pulsar as an app meets it: ``broker.pulsar`` in the YAML, the token from
the environment, every client the service makes, and ``swimstream run`` refused.

pulsar-lite ignores credentials and has no TLS listener, so the broker here is
pulsar-lite behind :class:`~tests.support.pulsar_gateway.PulsarGateway`, which
terminates TLS and refuses a ``CONNECT`` without the token, as a secured Apache Pulsar
does. What must hold: the sink and the sources the factory makes from the config
connect with the token over TLS and move records; a wrong token or a missing CA stops
``run`` at once (exit 1), its last line naming the key to check, as does a wrong basic
password or OAuth 2.0 client secret (which the issuer refuses: see
:mod:`connectors.pulsar.oauth2`); and no secret shows in a log line, neither the
service's nor pulsar-client's own (written to the standard output by its C++ threads).
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.embedded import EmbeddedPulsar, unique_topic_name
from connectors.factory import open_connectors
from swimstream.config import AppConfig, load_config
from tests.cli.test_check import REPO
from tests.support.certificates import Certificates
from tests.support.oauth2_issuer import OAuth2Issuer
from tests.support.pulsar_gateway import PulsarGateway

TOKEN = "eyJhbGciOiJIUzI1NiJ9.YXBw.Hunter2-s3cret"

APP = """\
app: towers
broker:
  kind: pulsar
  service_url: "{service_url}"
  subscription_type: shared
  pulsar:
{pulsar}
agents:
  device: {{class: examples.towers.app:Device, route: /device/:id}}
  tower: {{class: examples.towers.app:Tower, route: /tower/:id}}
sources:
  - {{topic: readings, route: "/device/{{key}}", lane: reading}}
sinks:
  - {{publish: alerts, topic: device-alerts}}
web: {{listen: "127.0.0.1:0"}}
store: {{path: "{store}"}}
"""


@pytest.fixture
def secured(pulsar_broker: EmbeddedPulsar, certificates: Certificates) -> Iterator[PulsarGateway]:
    """pulsar-lite behind TLS and a token."""
    with PulsarGateway(pulsar_broker.port, tls=certificates.server_context(), token=TOKEN) as gate:
        yield gate


def app_yaml(gateway: PulsarGateway, tmp_path: Path, pulsar: str) -> str:
    return APP.format(service_url=gateway.service_url, pulsar=pulsar, store=tmp_path / "store")


def trusted(certificates: Certificates) -> str:
    return (
        f'    tls_trust_certs_file_path: "{certificates.ca}"\n'
        '    authentication: {token: "${PULSAR_TOKEN}"}'
    )


async def ten_records_through(
    config: AppConfig, topic: str
) -> tuple[list[BaseException | None], list[bytes]]:
    """Ten records produced through the app's Pulsar sink and read back with its source:
    (the delivery reports, the values read)."""
    async with open_connectors(config, "edge-1") as clients:
        pulsar = clients["pulsar"]
        reports: list[BaseException | None] = []
        for number in range(10):
            pulsar.sink.produce(topic, b"device-%d" % number, b"%d" % number, None, reports.append)
        assert await pulsar.sink.flush(10)
        source = pulsar.make_source([topic])
        await source.open()
        try:
            values: list[bytes] = []
            deadline = time.monotonic() + 10
            while len(values) < 10 and time.monotonic() < deadline:
                values += [record.value() or b"" for record in source.consume(10)]
                await source.wait_for_records(0.2)
        finally:
            await source.close()
    return reports, values


async def test_the_clients_of_an_app_connect_with_its_token_over_tls(
    secured: PulsarGateway,
    certificates: Certificates,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    text = app_yaml(secured, tmp_path, trusted(certificates))
    config = load_config(text, {"PULSAR_TOKEN": TOKEN})
    topic = unique_topic_name("secured-app")
    reports, values = await ten_records_through(config, topic)
    assert reports == [None] * 10
    assert sorted(int(value) for value in values) == list(range(10))
    seen = secured.client_connects()
    assert seen and all((c.method, c.data) == ("token", TOKEN.encode()) for c in seen)
    printed = capfd.readouterr()
    assert TOKEN not in caplog.text + printed.out + printed.err


def run(app: str, tmp_path: Path, token: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "app.yaml"
    config.write_text(app)
    return subprocess.run(
        [sys.executable, "-m", "swimstream", "run", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PULSAR_TOKEN": token, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_stops_at_once_on_a_refused_token_naming_the_key(
    secured: PulsarGateway, certificates: Certificates, tmp_path: Path
) -> None:
    began = time.monotonic()
    result = run(app_yaml(secured, tmp_path, trusted(certificates)), tmp_path, "x" + TOKEN)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - began < 15  # (not the client's 10 s timeout, retried for ever)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("swimstream: the Pulsar broker at pulsar+ssl://localhost:"), last
    assert "refused the client (AuthenticationError, token)" in last
    assert "check broker.pulsar.authentication.token" in last
    assert TOKEN not in result.stdout + result.stderr


def test_run_stops_at_once_when_the_broker_s_certificate_is_not_trusted(
    secured: PulsarGateway, tmp_path: Path
) -> None:
    """No CA file: the system's CAs did not sign the gateway's certificate."""
    pulsar = '    authentication: {token: "${PULSAR_TOKEN}"}'
    result = run(app_yaml(secured, tmp_path, pulsar), tmp_path, TOKEN)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "has a certificate the client cannot verify" in last
    assert "check broker.pulsar.tls_trust_certs_file_path" in last
    assert TOKEN not in result.stdout + result.stderr


PASSWORD = "correct horse battery staple"


def test_run_stops_at_once_on_a_refused_basic_password_naming_the_keys(
    pulsar_broker: EmbeddedPulsar, certificates: Certificates, tmp_path: Path
) -> None:
    """Basic credentials over TLS, the password from the environment."""
    pulsar = (
        f'    tls_trust_certs_file_path: "{certificates.ca}"\n'
        "    authentication:\n"
        '      basic: {username: twins, password: "${PULSAR_PASSWORD}"}'
    )
    context = certificates.server_context()
    with PulsarGateway(pulsar_broker.port, tls=context, basic={"twins": PASSWORD}) as gate:
        began = time.monotonic()
        result = run(app_yaml(gate, tmp_path, pulsar), tmp_path, PULSAR_PASSWORD="x" + PASSWORD)
        assert not gate.client_connects()  # (stopped before pulsar-client was made)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - began < 15
    last = result.stderr.strip().splitlines()[-1]
    assert "refused the client (AuthenticationError, basic)" in last, last
    assert "check broker.pulsar.authentication.basic.username and .password" in last
    assert PASSWORD not in result.stdout + result.stderr


CLIENT_SECRET = "oauth-Hunter2-client-s3cret"
ACCESS_TOKEN = "eyJhbGciOiJSUzI1NiJ9.YXBw.issued-by-the-loopback-issuer"


def oauth2_block(certificates: Certificates, issuer: OAuth2Issuer) -> str:
    """The CA file (of the broker's TLS, or of an https issuer's), OAuth 2.0 client
    credentials from ``${PULSAR_OAUTH2}`` (a ``data:`` URL, as a secret mounted in the
    environment would be)."""
    return (
        f'    tls_trust_certs_file_path: "{certificates.ca}"\n'
        "    authentication:\n"
        "      oauth2:\n"
        f"        issuer_url: {issuer.issuer_url}\n"
        '        private_key: "${PULSAR_OAUTH2}"\n'
        "        audience: pulsar"
    )


def data_url(credentials: str) -> str:
    return "data:application/json;base64," + base64.b64encode(credentials.encode()).decode()


async def test_the_clients_of_an_app_connect_with_an_oauth2_token(
    pulsar_broker: EmbeddedPulsar,
    certificates: Certificates,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    issuer = OAuth2Issuer("towers", CLIENT_SECRET, ACCESS_TOKEN, audience="pulsar")
    context = certificates.server_context()
    with issuer, PulsarGateway(pulsar_broker.port, tls=context, token=ACCESS_TOKEN) as gate:
        text = app_yaml(gate, tmp_path, oauth2_block(certificates, issuer))
        config = load_config(text, {"PULSAR_OAUTH2": data_url(issuer.credentials())})
        topic = unique_topic_name("oauth2-app")
        reports, values = await ten_records_through(config, topic)
        seen = gate.client_connects()
    assert reports == [None] * 10
    assert sorted(int(value) for value in values) == list(range(10))
    assert seen and all((c.method, c.data) == ("token", ACCESS_TOKEN.encode()) for c in seen)
    printed = capfd.readouterr()
    for secret in (CLIENT_SECRET, ACCESS_TOKEN):
        assert secret not in caplog.text + printed.out + printed.err


def test_run_stops_at_once_on_a_refused_client_secret_naming_the_key(
    pulsar_broker: EmbeddedPulsar, certificates: Certificates, tmp_path: Path
) -> None:
    issuer = OAuth2Issuer("towers", CLIENT_SECRET, ACCESS_TOKEN, audience="pulsar")
    context = certificates.server_context()
    with issuer, PulsarGateway(pulsar_broker.port, tls=context, token=ACCESS_TOKEN) as gate:
        began = time.monotonic()
        wrong = data_url(issuer.credentials(secret="x" + CLIENT_SECRET))
        result = run(
            app_yaml(gate, tmp_path, oauth2_block(certificates, issuer)),
            tmp_path,
            PULSAR_OAUTH2=wrong,
        )
        assert not gate.connects  # (the issuer said no: the broker was not asked)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - began < 15
    last = result.stderr.strip().splitlines()[-1]
    assert f"the OAuth 2.0 issuer at {issuer.issuer_url} refused the client credentials" in last
    assert "(invalid_client): check broker.pulsar.authentication.oauth2.private_key" in last
    output = result.stdout + result.stderr
    for secret in (CLIENT_SECRET, wrong, ACCESS_TOKEN):
        assert secret not in output


async def test_a_plaintext_broker_with_an_https_issuer_behind_a_private_ca(
    pulsar_broker: EmbeddedPulsar, certificates: Certificates, tmp_path: Path
) -> None:
    """A ``pulsar://`` broker inside a cluster, a corporate identity provider over https
    with a private CA: ``tls_trust_certs_file_path`` with a ``pulsar://`` URL is taken,
    and the first contact and pulsar-client both check the issuer with it."""
    issuer = OAuth2Issuer(
        "towers", CLIENT_SECRET, ACCESS_TOKEN, audience="pulsar", tls=certificates.server_context()
    )
    with issuer, PulsarGateway(pulsar_broker.port, token=ACCESS_TOKEN) as gate:
        assert gate.service_url.startswith("pulsar://")
        text = app_yaml(gate, tmp_path, oauth2_block(certificates, issuer))
        config = load_config(text, {"PULSAR_OAUTH2": data_url(issuer.credentials())})
        reports, values = await ten_records_through(config, unique_topic_name("private-ca"))
        seen = gate.client_connects()
    assert issuer.issuer_url.startswith("https://")
    assert reports == [None] * 10
    assert sorted(int(value) for value in values) == list(range(10))
    assert seen and all((c.method, c.data) == ("token", ACCESS_TOKEN.encode()) for c in seen)
    # (the sink's and the source's first contacts, then at least one client's)
    assert len(issuer.token_requests) >= 3
