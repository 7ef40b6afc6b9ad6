"""The Pulsar source and sink with OAuth 2.0 client credentials, against the real
pulsar-lite behind the test gateway and a loopback issuer
(:class:`~tests.support.oauth2_issuer.OAuth2Issuer`) whose token alone the gateway takes.

What must hold, as for the other methods (tests/connectors/test_pulsar_security.py):
the right client secret moves records; a refusal stops ``open`` naming the
``broker.pulsar.authentication.oauth2`` key to check, never the secret nor the token; an
issuer that does not answer is waited for; and the client's token is renewed once it
expires, with no record lost.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.embedded import EmbeddedPulsar
from connectors.pulsar import PulsarSettings, PulsarSink, PulsarSource
from connectors.pulsar.security import oauth2_params
from swimstream.config.secrets import HIDDEN
from swimstream.errors import BrokerError
from tests.connectors.pulsar_secured import gateway, refusal, round_trip, settings
from tests.support.certificates import Certificates
from tests.support.oauth2_issuer import OAuth2Issuer
from tests.support.pulsar_gateway import PulsarGateway

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


@pytest.mark.parametrize("expires_in", [0, "0"])
async def test_a_token_that_expires_at_once_is_refused_naming_the_issuer(
    oauth2_gateway: PulsarGateway, tmp_path: Path, expires_in: object
) -> None:
    """pulsar-client refuses a token whose ``expires_in`` is 0: its producers fail with
    a bare AuthenticationError (seen), after the first contact took the same token."""
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
        f"(expires_in {json.dumps(expires_in)}), which pulsar-client cannot use: check the "
        "client's token lifetime at the issuer (broker.pulsar.authentication.oauth2.issuer_url)"
    ) in message
    assert not oauth2_gateway.connects  # (the broker was never asked)


@pytest.mark.parametrize("expires_in", [None, -5, 3600.0], ids=["missing", "negative", "float"])
async def test_a_lifetime_the_client_cannot_read_is_warned_of_and_records_flow(
    oauth2_gateway: PulsarGateway,
    tmp_path: Path,
    topic: str,
    expires_in: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pulsar-client reads ``expires_in`` as a whole number of seconds; it keeps a token
    without one for good (it works until it expires: records flow), so the start warns."""
    with (
        OAuth2Issuer(
            "swimstream-twins",
            CLIENT_SECRET,
            ACCESS_TOKEN,
            audience="pulsar",
            expires_in=expires_in,
        ) as issuer,
        caplog.at_level(logging.WARNING, logger="swimstream.pulsar"),
    ):
        values = await round_trip(
            oauth2_gateway.service_url,
            topic,
            oauth2_settings(issuer, str(credentials_file(tmp_path, issuer))),
        )
    assert sorted(int(value) for value in values) == list(range(20))
    said = "none" if expires_in is None else json.dumps(expires_in)
    warned = [r.getMessage() for r in caplog.records if "lifetime" in r.getMessage()]
    assert warned, "no warning"
    assert all(
        f"the OAuth 2.0 issuer at {issuer.issuer_url} gave a token without a lifetime "
        f"pulsar-client reads (expires_in {said};" in line
        for line in warned
    )
    assert all(ACCESS_TOKEN not in line and CLIENT_SECRET not in line for line in warned)


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
    checks the issuer with it (observed once with pulsar-client 3.13, not tested here:
    without it, or with another CA's, the client said AuthenticationError and asked the
    issuer nothing); the first contact does the same, and names the key."""
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

        messages = []
        for ca in (str(certificates.other_ca), None):  # (None: the system's CAs)
            untrusted = replace(trusted, security=replace(trusted.security, trust_certs_file=ca))
            messages.append(
                await refusal(oauth2_gateway.service_url, untrusted, secrets=(CLIENT_SECRET,))
            )
    for message in messages:
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


TOKEN_LIFETIME = 8
"""Seconds, enough for two rounds of records before the tokens expire."""


async def test_the_client_keeps_its_oauth2_token_until_it_expires_then_fetches_a_new_one(
    pulsar_broker: EmbeddedPulsar, topic: str, tmp_path: Path
) -> None:
    """pulsar-client keeps its token until ``expires_in`` runs out (connections dropped,
    as by a broker restart, come back with it, and the issuer is not asked), then asks
    the issuer for a new one at the next ``CONNECT``; no record is lost."""
    issuer = OAuth2Issuer(
        "swimstream-twins", CLIENT_SECRET, ACCESS_TOKEN, expires_in=TOKEN_LIFETIME, rotate=True
    )
    with issuer, PulsarGateway(pulsar_broker.port, accepts_token=issuer.accepts) as gate:
        with_settings = oauth2_settings(issuer, str(credentials_file(tmp_path, issuer)))
        sink = PulsarSink(gate.service_url, settings=with_settings)
        source = PulsarSource(gate.service_url, "twins", [topic], settings=with_settings)
        try:
            await sink.open()
            await source.open()
            read = await produce_and_read(sink, source, topic, range(10))
            first = gate.client_connects()
            asked = len(issuer.token_requests)
            assert gate.drop_connections() > 0  # (before the tokens expire)
            read |= await produce_and_read(sink, source, topic, range(10, 20))
            again = gate.client_connects()[len(first) :]
            asked_again = len(issuer.token_requests)
            expiry = max(expires for _, expires in issuer.issued)
            await asyncio.sleep(expiry - time.monotonic() + 0.5)  # (every token has expired)
            assert not any(issuer.accepts(seen.data) for seen in first)
            assert gate.drop_connections() > 0
            read |= await produce_and_read(sink, source, topic, range(20, 30))
        finally:
            await source.close()
            await sink.close()
        after = gate.client_connects()[len(first) + len(again) :]
    assert read == set(range(30))
    assert again, "the client did not connect again"
    assert {seen.data for seen in again} <= {seen.data for seen in first}  # (its own tokens)
    assert asked_again == asked  # (and the issuer was not asked)
    assert after, "the client did not connect after the tokens expired"
    assert len(issuer.token_requests) > asked  # (the client asked again)
    assert {seen.data for seen in after}.isdisjoint({seen.data for seen in first})
    assert not gate.refused  # (the client never sent an expired token)
