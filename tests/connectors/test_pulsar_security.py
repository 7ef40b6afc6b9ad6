"""The Pulsar source and sink with TLS and authentication, against the real pulsar-lite.

pulsar-lite 0.2.0 has no TLS listener and accepts any credentials (or none), so these
tests put :class:`~tests.support.pulsar_gateway.PulsarGateway` in front of it: a
loopback gateway that terminates TLS with a CA made for the session (optionally
requiring a client certificate) and refuses a ``CONNECT`` without the right token or
basic password, as an Apache Pulsar broker with authentication does; for OAuth 2.0, a
loopback issuer (:class:`~tests.support.oauth2_issuer.OAuth2Issuer`) gives the one
token the gateway takes. The clients are pulsar-client's own,
configured through :class:`PulsarSecurity` as ``broker.pulsar`` configures them, and
records go from a :class:`PulsarSink` to a :class:`PulsarSource` through the gateway:
the gateway answers lookups with its own address, so every connection passes it.

What must hold: a client with the right CA file, client certificate, token, basic
password or OAuth 2.0 client secret moves records; one without stops at ``open`` within
a second or two with a final :class:`BrokerError` naming the ``broker.pulsar`` key to
check (not the client's 10 s ``TimeOut`` that the start would wait out for ever, nor its
bare ``AuthenticationError`` for an issuer's refusal), and never the secret. OAuth 2.0
is tested in tests/connectors/test_pulsar_oauth2.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.embedded import EmbeddedPulsar
from tests.connectors.pulsar_secured import PASSWORD, TOKEN, gateway, refusal, round_trip, settings
from tests.support.certificates import Certificates
from tests.support.pulsar_gateway import PulsarGateway


@pytest.fixture
def tls_gateway(
    pulsar_broker: EmbeddedPulsar, certificates: Certificates
) -> Iterator[PulsarGateway]:
    with gateway(pulsar_broker, tls=certificates.server_context()) as opened:
        yield opened


@pytest.fixture
def token_gateway(pulsar_broker: EmbeddedPulsar) -> Iterator[PulsarGateway]:
    with gateway(pulsar_broker, token=TOKEN) as opened:
        yield opened


# -- TLS -----------------------------------------------------------------------------


async def test_records_go_through_a_tls_listener_with_its_ca_file(
    tls_gateway: PulsarGateway, certificates: Certificates, topic: str
) -> None:
    with_ca = settings(trust_certs_file=str(certificates.ca))

    values = await round_trip(tls_gateway.service_url, topic, with_ca)

    assert sorted(int(value) for value in values) == list(range(20))
    assert tls_gateway.connects, "the clients went around the gateway"


async def test_without_the_ca_file_the_open_stops_naming_the_trust_setting(
    tls_gateway: PulsarGateway, certificates: Certificates
) -> None:
    for wrong in (settings(), settings(trust_certs_file=str(certificates.other_ca))):
        message = await refusal(tls_gateway.service_url, wrong)
        assert "has a certificate the client cannot verify" in message
        assert "check broker.pulsar.tls_trust_certs_file_path" in message
    assert not tls_gateway.connects  # (nothing got as far as a CONNECT)


async def test_a_certificate_for_another_host_names_tls_validate_hostname(
    tls_gateway: PulsarGateway, certificates: Certificates, topic: str
) -> None:
    """The server's certificate names ``localhost`` only; ``127.0.0.1`` is not it."""
    by_address = f"pulsar+ssl://127.0.0.1:{tls_gateway.port}"

    message = await refusal(by_address, settings(trust_certs_file=str(certificates.ca)))

    assert "does not name 127.0.0.1" in message
    assert "broker.pulsar.tls_validate_hostname: false" in message
    lenient = settings(trust_certs_file=str(certificates.ca), validate_hostname=False)
    assert len(await round_trip(by_address, topic, lenient)) == 20


async def test_an_insecure_connection_trusts_any_certificate(
    tls_gateway: PulsarGateway, topic: str
) -> None:
    insecure = settings(allow_insecure_connection=True)
    assert len(await round_trip(tls_gateway.service_url, topic, insecure)) == 20


async def test_tls_at_a_plaintext_broker_says_to_write_pulsar(
    pulsar_broker: EmbeddedPulsar, certificates: Certificates
) -> None:
    at_plaintext = f"pulsar+ssl://localhost:{pulsar_broker.port}"

    message = await refusal(at_plaintext, settings(trust_certs_file=str(certificates.ca)))

    assert "is a plaintext Pulsar listener: write the service URL as pulsar://" in message


async def test_a_missing_ca_file_is_named_before_anything_is_tried(
    tls_gateway: PulsarGateway, tmp_path: Path
) -> None:
    message = await refusal(
        tls_gateway.service_url, settings(trust_certs_file=str(tmp_path / "ca.pem"))
    )
    assert message.startswith("broker.pulsar.tls_trust_certs_file_path: no file ")


# -- mutual TLS ----------------------------------------------------------------------


async def test_mutual_tls_admits_a_certificate_the_broker_trusts_and_names_the_others(
    pulsar_broker: EmbeddedPulsar, certificates: Certificates, topic: str
) -> None:
    context = certificates.server_context(client_certificates=True)
    with gateway(pulsar_broker, tls=context) as mutual:
        trusted = settings(
            trust_certs_file=str(certificates.ca),
            certificate_path=str(certificates.client_cert),
            private_key_path=str(certificates.client_key),
        )
        assert len(await round_trip(mutual.service_url, topic, trusted)) == 20
        assert {seen.method for seen in mutual.client_connects()} == {"tls"}

        without = await refusal(mutual.service_url, settings(trust_certs_file=str(certificates.ca)))
        assert "wants a client certificate" in without
        assert "set broker.pulsar.authentication.tls" in without

        stranger = replace(
            trusted.security,
            certificate_path=str(certificates.stranger_cert),
            private_key_path=str(certificates.stranger_key),
        )
        refused = await refusal(mutual.service_url, replace(trusted, security=stranger))
        assert "refused the client certificate" in refused
        assert "check broker.pulsar.authentication.tls" in refused


# -- tokens --------------------------------------------------------------------------


async def test_a_token_is_sent_on_every_connection_and_records_flow(
    token_gateway: PulsarGateway, topic: str
) -> None:
    values = await round_trip(token_gateway.service_url, topic, settings(token=TOKEN))

    assert len(values) == 20
    assert token_gateway.client_connects()
    # Every CONNECT, swimstream's own checks' too: a secured broker logs each refusal.
    assert {(seen.method, seen.data) for seen in token_gateway.connects} == {
        ("token", TOKEN.encode())
    }


async def test_a_token_file_is_read_for_the_connection(
    token_gateway: PulsarGateway, topic: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")  # (as `kubectl create secret` files often end)

    values = await round_trip(
        token_gateway.service_url, topic, settings(token_file=str(token_file))
    )

    assert len(values) == 20


async def test_a_refused_token_stops_the_open_naming_the_setting_not_the_token(
    token_gateway: PulsarGateway,
) -> None:
    message = await refusal(token_gateway.service_url, settings(token="not-" + TOKEN))

    assert "refused the client (AuthenticationError, token)" in message
    assert "check broker.pulsar.authentication.token" in message
    assert "it said: Unable to authenticate" in message  # (the broker's own words)


async def test_no_credentials_at_a_broker_that_wants_them_says_to_set_them(
    token_gateway: PulsarGateway,
) -> None:
    message = await refusal(token_gateway.service_url, settings())

    assert "it requires authentication; set broker.pulsar.authentication" in message


async def test_a_token_for_an_address_that_is_no_pulsar_broker_says_what_answers(
    pulsar_broker: EmbeddedPulsar,
) -> None:
    """pulsar-lite's metrics port is an HTTP server."""
    metrics_port = pulsar_broker.metrics_url.split(":")[2].split("/")[0]

    message = await refusal(f"pulsar://127.0.0.1:{metrics_port}", settings(token=TOKEN))

    assert "is an HTTP server, not a Pulsar broker" in message


async def test_pulsar_lite_itself_accepts_any_token(
    pulsar_broker: EmbeddedPulsar, topic: str
) -> None:
    """Without the gateway: pulsar-lite ignores credentials, so a token set for it (a
    config shared with a secured cluster) does no harm."""
    values = await round_trip(pulsar_broker.service_url, topic, settings(token=TOKEN))
    assert len(values) == 20


# -- basic ---------------------------------------------------------------------------


@pytest.fixture
def basic_gateway(pulsar_broker: EmbeddedPulsar) -> Iterator[PulsarGateway]:
    with PulsarGateway(pulsar_broker.port, basic={"twins": PASSWORD}) as opened:
        yield opened


async def test_basic_credentials_are_sent_on_every_connection_and_records_flow(
    basic_gateway: PulsarGateway, topic: str
) -> None:
    login = settings(basic_username="twins", basic_password=PASSWORD)

    values = await round_trip(basic_gateway.service_url, topic, login)

    assert sorted(int(value) for value in values) == list(range(20))
    assert basic_gateway.client_connects()
    # pulsar-client's AuthenticationBasic sends "user:password" as it is (no base64),
    # and swimstream's own check sends the same.
    assert {(seen.method, seen.data) for seen in basic_gateway.connects} == {
        ("basic", b"twins:" + PASSWORD.encode())
    }


async def test_a_wrong_basic_password_stops_the_open_naming_the_keys(
    basic_gateway: PulsarGateway,
) -> None:
    wrong = settings(basic_username="twins", basic_password="not " + PASSWORD)

    message = await refusal(basic_gateway.service_url, wrong, secrets=("not " + PASSWORD,))

    assert "refused the client (AuthenticationError, basic)" in message
    assert "check broker.pulsar.authentication.basic.username and .password" in message
    assert "it said: Unable to authenticate" in message
    assert not basic_gateway.client_connects()  # (refused before the client was made)


async def test_an_unknown_basic_user_is_refused_too(basic_gateway: PulsarGateway) -> None:
    stranger = settings(basic_username="strangers", basic_password=PASSWORD)

    message = await refusal(basic_gateway.service_url, stranger)

    assert "check broker.pulsar.authentication.basic.username and .password" in message
