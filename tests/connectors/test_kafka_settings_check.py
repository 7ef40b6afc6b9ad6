"""librdkafka checks ``broker.settings`` by itself, one setting per client, offline."""

from __future__ import annotations

from connectors.kafka.settings_check import librdkafka_problems


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


def test_good_settings_pass_and_a_client_refused_for_another_reason_is_left_to_run() -> None:
    """SASL_SSL alone lacks its user name and password, which are other settings (or
    come from the environment where the service runs): not this setting's fault."""
    assert (
        librdkafka_problems(
            {
                "linger.ms": 20,
                "fetch.wait.max.ms": 100,
                "compression.type": "zstd",
                "enable.ssl.certificate.verification": False,
                "security.protocol": "SASL_SSL",
                "ssl.ca.location": "/only/where/the/service/runs.pem",
            }
        )
        == []
    )
