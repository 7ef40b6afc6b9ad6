"""``broker.pulsar``: one way to authenticate, TLS keys only with a TLS service URL (but
the CA file of an ``https`` OAuth 2.0 issuer), and the secrets (token, password, OAuth
2.0 credentials) never printed back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swimstream.config import parse_config
from tests.cli.test_check import run_check
from tests.config.documents import document, problems

SECRET = "Hunter2-s3cret"
TLS_URL = "pulsar+ssl://pulsar.example.com:6651"


def _broker(pulsar: Any, service_url: str = TLS_URL) -> dict[str, Any]:
    return {"kind": "pulsar", "service_url": service_url, "pulsar": pulsar}


def _problems(pulsar: Any, service_url: str = TLS_URL, **broker: Any) -> list[str]:
    return problems(
        document(broker={**_broker(pulsar, service_url), **broker}), {"PULSAR_TOKEN": SECRET}
    )


@pytest.mark.parametrize(
    ("pulsar", "expected"),
    [
        (
            {
                "authentication": {
                    "token": "${PULSAR_TOKEN}",
                    "tls": {"certificate_path": "c", "private_key_path": "k"},
                }
            },
            "broker.pulsar.authentication: set one of token, token_file, tls, oauth2, basic, "
            "not token and tls together",
        ),
        (
            {"authentication": {}},
            "broker.pulsar.authentication: set one of token, token_file, tls, oauth2, basic "
            "(or leave it out)",
        ),
        (
            {"authentication": {"token": ""}},
            "broker.pulsar.authentication.token: must not be empty",
        ),
        (
            {"authentication": {"tls": {"certificate_path": "client.pem"}}},
            "broker.pulsar.authentication.tls.private_key_path: required",
        ),
        (
            {"authentication": {"oauth2": {"issuer_url": "https://auth.example.com/"}}},
            "broker.pulsar.authentication.oauth2.private_key: required",
        ),
        (
            {"authentication": {"jwt": "x"}},
            "broker.pulsar.authentication.jwt: unknown key; expected one of: token, "
            "token_file, tls, oauth2, basic",
        ),
        (
            {"tls_trust_cert_file_path": "/etc/ca.pem"},
            "broker.pulsar.tls_trust_cert_file_path: unknown key; did you mean "
            "'tls_trust_certs_file_path'?",
        ),
        (
            {"tls_validate_hostname": "no"},
            "broker.pulsar.tls_validate_hostname: expected true or false, got 'no'",
        ),
    ],
)
def test_a_wrong_pulsar_block_is_named_by_its_key(pulsar: Any, expected: str) -> None:
    assert _problems(pulsar) == [expected]


def test_tls_keys_need_a_tls_service_url() -> None:
    found = _problems(
        {
            "tls_trust_certs_file_path": "/etc/pulsar/ca.pem",
            "authentication": {"tls": {"certificate_path": "c", "private_key_path": "k"}},
        },
        service_url="pulsar://pulsar.example.com:6650",
    )
    why = "needs a TLS service URL: write broker.service_url as pulsar+ssl://host:6651"
    assert found == [
        f"broker.pulsar.tls_trust_certs_file_path: {why}",
        f"broker.pulsar.authentication.tls: {why}",
    ]


def _oauth2(issuer_url: str) -> dict[str, Any]:
    return {"oauth2": {"issuer_url": issuer_url, "private_key": "/etc/pulsar/credentials.json"}}


@pytest.mark.parametrize(
    "issuer_url", ["https://auth.example.com/realms/pulsar", "http://auth.example.com"]
)
def test_a_ca_file_with_pulsar_url_is_taken_with_oauth2(issuer_url: str) -> None:
    """pulsar-client checks the identity provider's https endpoints with the CA file
    whatever the service URL (an http issuer may name an https token endpoint), so a
    plaintext broker whose identity provider has a private CA needs it."""
    pulsar = {
        "tls_trust_certs_file_path": "/etc/pulsar/ca.pem",
        "authentication": _oauth2(issuer_url),
    }
    config = parse_config(
        document(broker=_broker(pulsar, service_url="pulsar://pulsar.example.com:6650")), {}
    )
    assert config.broker.pulsar.tls_trust_certs_file_path == "/etc/pulsar/ca.pem"


def test_an_unset_issuer_url_is_the_only_problem_named() -> None:
    """The CA file is not also refused because an unset ``${VAR}`` is no https URL."""
    pulsar = {
        "tls_trust_certs_file_path": "/etc/pulsar/ca.pem",
        "authentication": _oauth2("${ISS}"),
    }
    found = _problems(pulsar, service_url="pulsar://pulsar.example.com:6650")
    assert len(found) == 1
    assert found[0].startswith("broker.pulsar.authentication.oauth2.issuer_url: ")
    assert "ISS" in found[0]


@pytest.mark.parametrize(
    "authentication", [None, {"token": "${PULSAR_TOKEN}"}], ids=["none", "token"]
)
def test_a_ca_file_with_pulsar_url_is_refused_without_oauth2(
    authentication: dict[str, Any] | None,
) -> None:
    pulsar: dict[str, Any] = {"tls_trust_certs_file_path": "/etc/pulsar/ca.pem"}
    if authentication is not None:
        pulsar["authentication"] = authentication
    assert _problems(pulsar, service_url="pulsar://pulsar.example.com:6650") == [
        "broker.pulsar.tls_trust_certs_file_path: needs a TLS service URL: write "
        "broker.service_url as pulsar+ssl://host:6651"
    ]


def test_oauth2_takes_only_the_ca_file_with_pulsar_url() -> None:
    """Not ``tls_allow_insecure_connection``: it would also be the broker's TLS setting."""
    pulsar = {
        "tls_trust_certs_file_path": "/etc/pulsar/ca.pem",
        "tls_allow_insecure_connection": True,
        "authentication": _oauth2("https://auth.example.com"),
    }
    assert _problems(pulsar, service_url="pulsar://pulsar.example.com:6650") == [
        "broker.pulsar.tls_allow_insecure_connection: needs a TLS service URL: write "
        "broker.service_url as pulsar+ssl://host:6651"
    ]


def test_the_embedded_pulsar_takes_no_ca_file_even_with_an_https_issuer() -> None:
    found = problems(
        document(
            broker={
                "kind": "embedded",
                "embedded_kind": "pulsar",
                "pulsar": {
                    "tls_trust_certs_file_path": "/etc/pulsar/ca.pem",
                    "authentication": _oauth2("https://auth.example.com"),
                },
            }
        )
    )
    assert found == [
        "broker.pulsar.tls_trust_certs_file_path: the embedded Pulsar broker speaks "
        "plaintext only; remove it"
    ]


def test_the_embedded_pulsar_takes_no_tls() -> None:
    found = problems(
        document(
            broker={
                "kind": "embedded",
                "embedded_kind": "pulsar",
                "pulsar": {"tls_allow_insecure_connection": True},
            }
        )
    )
    assert found == [
        "broker.pulsar.tls_allow_insecure_connection: the embedded Pulsar broker speaks "
        "plaintext only; remove it"
    ]


@pytest.mark.parametrize(
    ("pulsar", "expected"),
    [
        (
            {"authentication": f"token {SECRET}"},
            "broker.pulsar.authentication: expected a mapping of keys to values, got a string "
            "(its text not shown: it may hold a secret)",
        ),
        (
            {"authentication": {"basic": f"app:{SECRET}"}},
            "broker.pulsar.authentication.basic: expected a mapping of keys to values, got a "
            "string (its text not shown: it may hold a secret)",
        ),
        (
            {"authentication": {"token": f"ab${{{SECRET}!}}"}},
            "broker.pulsar.authentication.token: a '${...}' is not a variable reference; "
            "write ${NAME} or ${NAME:-default} ($$ for a literal $)",
        ),
        (
            {"authentication": {"token": ["${PULSAR_TOKEN}"]}},
            "broker.pulsar.authentication.token: expected a string, got a list",
        ),
    ],
)
def test_a_mistyped_secret_is_named_without_its_value(pulsar: Any, expected: str) -> None:
    found = _problems(pulsar)
    assert found == [expected]
    assert not any(SECRET in line for line in found)


CHECKED = """\
app: towers
broker:
  kind: pulsar
  service_url: "pulsar+ssl://pulsar.example.com:6651"
  pulsar:
{pulsar}
agents:
  device: {{class: examples.towers.app:Device, route: /device/:id}}
  tower: {{class: examples.towers.app:Tower, route: /tower/:id}}
sources:
  - {{topic: readings, route: "/device/{{key}}", lane: reading}}
sinks:
  - {{publish: alerts, topic: device-alerts}}
"""


def test_check_passes_a_token_from_the_environment_without_printing_it(tmp_path: Path) -> None:
    text = CHECKED.format(pulsar='    authentication: {token: "${PULSAR_TOKEN}"}')
    result = run_check(tmp_path, text, {"PULSAR_TOKEN": SECRET})
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_check_exits_2_naming_the_key_and_not_the_secret(tmp_path: Path) -> None:
    pulsar = '    authentication: {token: "${PULSAR_TOKEN}", basic: {username: app}}'
    result = run_check(tmp_path, CHECKED.format(pulsar=pulsar), {"PULSAR_TOKEN": SECRET})
    assert result.returncode == 2, result.stderr
    assert "broker.pulsar.authentication.basic.password: required" in result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("key", ["username", "password"])
def test_a_colon_in_basic_credentials_is_refused_without_printing_them(key: str) -> None:
    basic = {"username": "app", "password": SECRET, key: f"ab:{SECRET}"}
    found = _problems({"authentication": {"basic": basic}})
    assert found == [
        f"broker.pulsar.authentication.basic.{key}: must not contain ':' (Apache Pulsar "
        "splits user:password at every colon, so these credentials could never log in)"
    ]
    assert not any(SECRET in line for line in found)
