"""librdkafka checks ``broker.settings`` by itself, one setting per client, offline."""

from __future__ import annotations

from connectors.kafka.settings_check import _without_secrets, librdkafka_problems


def test_names_and_values_librdkafka_refuses_are_named_with_a_suggestion() -> None:
    problems = dict(
        librdkafka_problems(
            {
                "linger.mss": 5,
                "security.protocl": "SSL",
                "no.such.thing": 1,
                "compression.type": "zip",
                "session.timeout.ms": "soon",  # consumer-only: tried on a consumer
            }
        )
    )
    assert problems == {
        "linger.mss": "unknown librdkafka property; did you mean 'linger.ms'?",
        "security.protocl": "unknown librdkafka property; did you mean 'security.protocol'?",
        "no.such.thing": "unknown librdkafka property",
        "compression.type": 'librdkafka refuses the value: Invalid value "zip" for '
        'configuration property "compression.codec"',
        "session.timeout.ms": "librdkafka refuses the value: Invalid value for configuration "
        'property "session.timeout.ms"',
    }


def test_good_settings_pass() -> None:
    assert (
        librdkafka_problems(
            {
                "linger.ms": 20,
                "fetch.wait.max.ms": 100,
                "compression.type": "zstd",
                "enable.ssl.certificate.verification": False,
                "security.protocol": "SSL",
                "ssl.ca.location": "/only/where/the/service/runs.pem",
            }
        )
        == []
    )


def test_settings_librdkafka_refuses_together_are_named_as_run_would_refuse_them() -> None:
    """Each setting passes alone, but no client can be made of them: ``run`` would stop
    at once, so ``check`` says so, under ``broker.settings`` (the "" name)."""
    no_password = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "reader",
    }
    assert librdkafka_problems(no_password) == [
        (
            "",
            "librdkafka refuses these settings together: sasl.username and sasl.password "
            "must be set",
        )
    ]
    [(name, message)] = librdkafka_problems({"security.protocol": "SASL_PLAINTEXT"})
    assert name == ""
    assert "sasl.mechanism is not set, so librdkafka uses GSSAPI (Kerberos)" in message
    [(name, message)] = librdkafka_problems(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.secret": "s3cret-value",
        }
    )
    assert "sasl.oauthbearer.token.endpoint.url" in message
    assert "s3cret-value" not in message


def test_a_complete_login_passes_together_and_files_are_left_to_run() -> None:
    """A TLS file named here may exist only where the service runs: the settings are
    tried together without it (with it, librdkafka fails to read the file)."""
    assert (
        librdkafka_problems(
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "reader",
                "sasl.password": "secret",
                "ssl.ca.location": "/only/where/the/service/runs.pem",
                "ssl.key.location": "/only/where/the/service/runs.key",
                "session.timeout.ms": 30_000,  # consumer-only
            }
        )
        == []
    )


def test_a_secret_quoted_by_librdkafka_is_hidden_but_words_that_contain_it_are_not() -> None:
    text = "sasl.username and sasl.password must be set; got: hunter2"
    settings = {"sasl.username": "u", "sasl.password": "hunter2", "linger.ms": "set"}
    assert (
        _without_secrets(text, settings)
        == "sasl.username and sasl.password must be set; got: [hidden]"
    )
