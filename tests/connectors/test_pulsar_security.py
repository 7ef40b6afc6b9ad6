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
bare ``AuthenticationError`` for an issuer's refusal), and never the secret.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.embedded import EmbeddedPulsar, unique_topic_name
from connectors.pulsar import PULSAR_LITE_SETTINGS, PulsarSettings, PulsarSink, PulsarSource
from connectors.pulsar.security import PulsarSecurity, oauth2_params
from swimstream.config.secrets import HIDDEN
from swimstream.errors import BrokerError
from tests.support.certificates import Certificates, make_certificates
from tests.support.oauth2_issuer import OAuth2Issuer
from tests.support.pulsar_gateway import PulsarGateway

TOKEN = "eyJhbGciOiJIUzI1NiJ9.c3dpbXN0cmVhbQ.Hunter2-s3cret"
"""A token shaped like a JWT: the gateway admits it, and no message may show it."""
PASSWORD = "correct horse battery staple"
"""The basic password of user ``twins`` at the gateway; no message may show it."""


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    return unique_topic_name(request.node.name)


def gateway(
    broker: EmbeddedPulsar, *, tls: ssl.SSLContext | None = None, token: str | None = None
) -> PulsarGateway:
    return PulsarGateway(broker.port, tls=tls, token=token)


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


def settings(**security: Any) -> PulsarSettings:
    """The embedded broker's settings with ``security`` (:class:`PulsarSecurity`'s fields)."""
    return replace(PULSAR_LITE_SETTINGS, security=PulsarSecurity(**security), operation_timeout=5.0)


async def round_trip(service_url: str, topic: str, with_settings: PulsarSettings) -> list[bytes]:
    """Produce 20 records through a sink, then read them with a source; their values."""
    sink = PulsarSink(service_url, settings=with_settings)
    await sink.open()
    reports: list[BaseException | None] = []
    try:
        for number in range(20):
            sink.produce(topic, b"device-%d" % (number % 4), b"%d" % number, None, reports.append)
        assert await sink.flush(10)
    finally:
        await sink.close()
    assert reports == [None] * 20
    source = PulsarSource(service_url, "twins", [topic], settings=with_settings)
    await source.open()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 10
        while len(values) < 20 and time.monotonic() < deadline:
            values += [record.value() or b"" for record in source.consume(20)]
            if len(values) < 20:
                await source.wait_for_records(0.2)
    finally:
        await source.close()
    return values


async def refusal(
    service_url: str, with_settings: PulsarSettings, secrets: tuple[str, ...] = ()
) -> str:
    """The message of the final error a sink's ``open`` stops with, in under 3 s."""
    sink = PulsarSink(service_url, settings=with_settings)
    began = time.monotonic()
    with pytest.raises(BrokerError) as caught:
        await sink.open()
    await sink.close()
    assert time.monotonic() - began < 3, "it waited for the client's timeout"
    assert not caught.value.unreachable, f"a refusal the start would wait out: {caught.value}"
    for secret in (TOKEN, PASSWORD, *secrets):
        assert secret not in str(caught.value)
    return str(caught.value)


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


# -- OAuth 2.0 -----------------------------------------------------------------------

CLIENT_SECRET = "oauth-Hunter2-client-s3cret"
ACCESS_TOKEN = "eyJhbGciOiJSUzI1NiJ9.b2F1dGg.issued-by-the-loopback-issuer"


@pytest.fixture
def issuer() -> Iterator[OAuth2Issuer]:
    with OAuth2Issuer("swimstream-twins", CLIENT_SECRET, ACCESS_TOKEN, audience="pulsar") as opened:
        yield opened


@pytest.fixture
def oauth2_gateway(pulsar_broker: EmbeddedPulsar) -> Iterator[PulsarGateway]:
    """A broker that takes the issuer's token, as one configured with its public key."""
    with gateway(pulsar_broker, token=ACCESS_TOKEN) as opened:
        yield opened


def oauth2_settings(
    issuer: OAuth2Issuer, private_key: str, scope: str | None = None
) -> PulsarSettings:
    return settings(oauth2_params=oauth2_params(issuer.issuer_url, private_key, "pulsar", scope))


def credentials_file(tmp_path: Path, issuer: OAuth2Issuer, secret: str | None = None) -> Path:
    path = tmp_path / "credentials.json"
    path.write_text(issuer.credentials(secret))
    return path


@pytest.mark.parametrize("form", ["path", "file URL", "data URL"])
async def test_oauth2_client_credentials_get_a_token_the_broker_takes_and_records_flow(
    issuer: OAuth2Issuer, oauth2_gateway: PulsarGateway, topic: str, tmp_path: Path, form: str
) -> None:
    path = credentials_file(tmp_path, issuer)
    private_key = {
        "path": str(path),
        "file URL": f"file://{path}",
        "data URL": "data:application/json;base64," + base64.b64encode(path.read_bytes()).decode(),
    }[form]

    values = await round_trip(
        oauth2_gateway.service_url, topic, oauth2_settings(issuer, private_key, scope="produce")
    )

    assert sorted(int(value) for value in values) == list(range(20))
    assert oauth2_gateway.client_connects()
    assert {(seen.method, seen.data) for seen in oauth2_gateway.connects} == {
        ("token", ACCESS_TOKEN.encode())
    }
    # Both the first contact and pulsar-client asked with the same grant.
    assert len(issuer.token_requests) >= 2
    assert all(
        asked
        == {
            "grant_type": "client_credentials",
            "client_id": "swimstream-twins",
            "client_secret": CLIENT_SECRET,
            "audience": "pulsar",
            "scope": "produce",
        }
        for asked in issuer.token_requests
    )


async def test_a_wrong_client_secret_is_refused_by_the_issuer_naming_the_key(
    issuer: OAuth2Issuer, oauth2_gateway: PulsarGateway, tmp_path: Path
) -> None:
    wrong = credentials_file(tmp_path, issuer, secret="not-" + CLIENT_SECRET)

    message = await refusal(
        oauth2_gateway.service_url,
        oauth2_settings(issuer, str(wrong)),
        secrets=(CLIENT_SECRET, "not-" + CLIENT_SECRET),
    )

    assert f"the OAuth 2.0 issuer at {issuer.issuer_url} refused the client credentials" in message
    assert "(invalid_client): check broker.pulsar.authentication.oauth2.private_key" in message
    assert not oauth2_gateway.connects  # (the broker was never asked)
    assert len(issuer.token_requests) == 1  # (the client was not made)


async def test_a_token_the_broker_refuses_names_the_oauth2_block(
    issuer: OAuth2Issuer, pulsar_broker: EmbeddedPulsar, tmp_path: Path
) -> None:
    """The issuer gives a token, but not one this broker takes (another issuer's, say)."""
    with gateway(pulsar_broker, token="another issuer's token") as elsewhere:
        message = await refusal(
            elsewhere.service_url,
            oauth2_settings(issuer, str(credentials_file(tmp_path, issuer))),
            secrets=(ACCESS_TOKEN, CLIENT_SECRET),
        )
    assert "refused the client (AuthenticationError, oauth2)" in message
    assert "check broker.pulsar.authentication.oauth2 (the broker refused the token" in message


@pytest.mark.parametrize("expires_in", [0, -5])
async def test_a_token_that_expires_at_once_is_refused_naming_the_issuer(
    oauth2_gateway: PulsarGateway, tmp_path: Path, expires_in: int
) -> None:
    """pulsar-client cannot use a token the issuer says expired already: it fails with
    a bare AuthenticationError, after the first contact took the same token."""
    with OAuth2Issuer(
        "swimstream-twins", CLIENT_SECRET, ACCESS_TOKEN, audience="pulsar", expires_in=expires_in
    ) as short:
        message = await refusal(
            oauth2_gateway.service_url,
            oauth2_settings(short, str(credentials_file(tmp_path, short))),
            secrets=(ACCESS_TOKEN, CLIENT_SECRET),
        )
    assert (
        f"the OAuth 2.0 issuer at {short.issuer_url} gave a token that expires at once "
        f"(expires_in {expires_in}), which pulsar-client cannot use: check the client's "
        "token lifetime at the issuer (broker.pulsar.authentication.oauth2.issuer_url)"
    ) in message
    assert not oauth2_gateway.connects  # (the broker was never asked)


async def test_an_issuer_url_without_a_discovery_document_names_issuer_url(
    issuer: OAuth2Issuer, oauth2_gateway: PulsarGateway, tmp_path: Path
) -> None:
    private_key = str(credentials_file(tmp_path, issuer))
    moved = settings(
        oauth2_params=oauth2_params(issuer.issuer_url + "/realms/other", private_key, "pulsar")
    )

    message = await refusal(oauth2_gateway.service_url, moved)

    assert "has no discovery document (HTTP 404" in message
    assert "check broker.pulsar.authentication.oauth2.issuer_url" in message


@pytest.mark.parametrize("issuer_url", ["auth.example.com", "http://[::1"])
async def test_an_issuer_url_that_is_no_url_names_issuer_url(
    issuer: OAuth2Issuer, oauth2_gateway: PulsarGateway, tmp_path: Path, issuer_url: str
) -> None:
    private_key = str(credentials_file(tmp_path, issuer))
    broken = settings(oauth2_params=oauth2_params(issuer_url, private_key, "pulsar"))

    message = await refusal(oauth2_gateway.service_url, broken)

    assert message == (
        "broker.pulsar.authentication.oauth2.issuer_url: not an http or https URL the client"
        " can ask for a token"
    )
    assert not oauth2_gateway.connects


async def test_an_issuer_s_words_are_shown_without_the_client_secret_in_any_spelling(
    pulsar_broker: EmbeddedPulsar, tmp_path: Path
) -> None:
    """An issuer that quotes the form it was sent, where the secret is URL-encoded."""
    secret = "s3cret+with/odd chars&="
    with (
        OAuth2Issuer("swimstream-twins", secret, ACCESS_TOKEN, echo_form=True) as echoing,
        gateway(pulsar_broker, token=ACCESS_TOKEN) as opened,
    ):
        wrong = credentials_file(tmp_path, echoing, secret=secret + "x")
        message = await refusal(
            opened.service_url,
            oauth2_settings(echoing, str(wrong)),
            secrets=(secret, urllib.parse.quote_plus(secret + "x"), secret + "x"),
        )
    assert "refused the client credentials (invalid_client)" in message
    assert f"client_secret={HIDDEN}&" in message  # (the issuer's words, the secret hidden)


async def test_an_unreadable_credentials_file_is_named_not_shown(
    issuer: OAuth2Issuer, oauth2_gateway: PulsarGateway, tmp_path: Path
) -> None:
    not_json = tmp_path / "credentials.json"
    not_json.write_text(f"client_secret={CLIENT_SECRET}")
    for private_key, problem in (
        (str(tmp_path / "missing.json"), "cannot read the credentials file"),
        (str(not_json), "the credentials are not JSON"),
    ):
        message = await refusal(
            oauth2_gateway.service_url,
            oauth2_settings(issuer, private_key),
            secrets=(CLIENT_SECRET,),
        )
        assert message.startswith(f"broker.pulsar.authentication.oauth2.private_key: {problem}")
    assert not issuer.token_requests


async def test_an_issuer_that_does_not_answer_is_waited_for(
    oauth2_gateway: PulsarGateway, tmp_path: Path
) -> None:
    """Nothing listens at the issuer's port: the start waits, as for a broker."""
    with OAuth2Issuer("swimstream-twins", CLIENT_SECRET, ACCESS_TOKEN) as gone:
        issuer_url = gone.issuer_url
        private_key = str(credentials_file(tmp_path, gone))
    sink = PulsarSink(
        oauth2_gateway.service_url,
        settings=settings(oauth2_params=oauth2_params(issuer_url, private_key)),
    )
    with pytest.raises(BrokerError) as caught:
        await sink.open()
    await sink.close()
    assert caught.value.unreachable
    assert f"the OAuth 2.0 issuer at {issuer_url}/.well-known/openid-configuration" in str(
        caught.value
    )


async def test_an_https_issuer_is_trusted_with_the_client_s_ca_file(
    pulsar_broker: EmbeddedPulsar, certificates: Certificates, topic: str, tmp_path: Path
) -> None:
    """pulsar-client checks the issuer's certificate with tls_trust_certs_file_path too."""
    issuer = OAuth2Issuer(
        "swimstream-twins", CLIENT_SECRET, ACCESS_TOKEN, tls=certificates.server_context()
    )
    with (
        issuer,
        gateway(pulsar_broker, tls=certificates.server_context(), token=ACCESS_TOKEN) as gate,
    ):
        private_key = str(credentials_file(tmp_path, issuer))
        trusted = settings(
            trust_certs_file=str(certificates.ca),
            oauth2_params=oauth2_params(issuer.issuer_url, private_key),
        )
        assert len(await round_trip(gate.service_url, topic, trusted)) == 20
        assert gate.client_connects()
    assert len(issuer.token_requests) >= 2  # (the first contact's, then the client's)


async def test_an_https_issuer_signed_by_another_ca_names_the_trust_setting(
    oauth2_gateway: PulsarGateway, certificates: Certificates, tmp_path: Path
) -> None:
    issuer = OAuth2Issuer(
        "swimstream-twins", CLIENT_SECRET, ACCESS_TOKEN, tls=certificates.server_context()
    )
    with issuer:
        untrusted = settings(
            trust_certs_file=str(certificates.other_ca),
            oauth2_params=oauth2_params(issuer.issuer_url, str(credentials_file(tmp_path, issuer))),
        )
        message = await refusal(oauth2_gateway.service_url, untrusted, secrets=(CLIENT_SECRET,))
    assert message.startswith(f"the OAuth 2.0 issuer at {issuer.issuer_url}/.well-known/")
    assert "has a certificate the client cannot verify" in message
    assert "check broker.pulsar.tls_trust_certs_file_path" in message
    assert not oauth2_gateway.connects


async def test_an_https_issuer_behind_a_private_ca_with_a_plaintext_broker(
    oauth2_gateway: PulsarGateway, certificates: Certificates, topic: str, tmp_path: Path
) -> None:
    """pulsar-client takes ``tls_trust_certs_file_path`` with a ``pulsar://`` URL and
    checks the issuer with it (seen: without it, or with another CA, the client says
    AuthenticationError and asks the issuer nothing); the first contact does the same."""
    issuer = OAuth2Issuer(
        "swimstream-twins", CLIENT_SECRET, ACCESS_TOKEN, tls=certificates.server_context()
    )
    with issuer:
        private_key = str(credentials_file(tmp_path, issuer))
        trusted = settings(
            trust_certs_file=str(certificates.ca),
            oauth2_params=oauth2_params(issuer.issuer_url, private_key),
        )
        assert oauth2_gateway.service_url.startswith("pulsar://")
        assert len(await round_trip(oauth2_gateway.service_url, topic, trusted)) == 20
        assert oauth2_gateway.client_connects()

        untrusted = replace(
            trusted, security=replace(trusted.security, trust_certs_file=str(certificates.other_ca))
        )
        message = await refusal(oauth2_gateway.service_url, untrusted, secrets=(CLIENT_SECRET,))
    assert "has a certificate the client cannot verify" in message
    assert "check broker.pulsar.tls_trust_certs_file_path" in message


async def produce_and_read(
    sink: PulsarSink, source: PulsarSource, topic: str, numbers: range
) -> set[int]:
    """Produce ``numbers`` through ``sink`` and read until ``source`` has handed each
    out (a reconnect may hand some out twice); the numbers read."""
    reports: list[BaseException | None] = []
    for number in numbers:
        sink.produce(topic, b"device-%d" % (number % 4), b"%d" % number, None, reports.append)
    assert await sink.flush(15)
    assert reports == [None] * len(numbers)
    read: set[int] = set()
    deadline = time.monotonic() + 15
    while not read >= set(numbers) and time.monotonic() < deadline:
        read |= {int(record.value() or b"-1") for record in source.consume(50)}
        await source.wait_for_records(0.2)
    return read


async def test_an_expired_oauth2_token_is_fetched_again_when_the_client_reconnects(
    pulsar_broker: EmbeddedPulsar, topic: str, tmp_path: Path
) -> None:
    """pulsar-client keeps its token until ``expires_in`` runs out, then asks the issuer
    for a new one at the next ``CONNECT``: connections dropped (a broker restart) after
    the first token expired come back with a new token, and no record is lost."""
    issuer = OAuth2Issuer(
        "swimstream-twins", CLIENT_SECRET, ACCESS_TOKEN, expires_in=2, rotate=True
    )
    with issuer, PulsarGateway(pulsar_broker.port, accepts_token=issuer.accepts) as gate:
        with_settings = oauth2_settings(issuer, str(credentials_file(tmp_path, issuer)))
        sink = PulsarSink(gate.service_url, settings=with_settings)
        source = PulsarSource(gate.service_url, "twins", [topic], settings=with_settings)
        try:
            await sink.open()
            await source.open()
            read = await produce_and_read(sink, source, topic, range(10))
            before = gate.client_connects()
            asked = len(issuer.token_requests)
            await asyncio.sleep(issuer.expires_in + 0.5)  # (every token given has expired)
            assert not any(issuer.accepts(seen.data) for seen in before)
            assert gate.drop_connections() > 0
            read |= await produce_and_read(sink, source, topic, range(10, 20))
        finally:
            await source.close()
            await sink.close()
        after = gate.client_connects()[len(before) :]
    assert read == set(range(20))
    assert len(issuer.token_requests) > asked  # (the client asked again)
    assert after, "the client did not connect again"
    assert {seen.data for seen in after}.isdisjoint({seen.data for seen in before})
    assert not gate.refused  # (the client never sent the expired token)
