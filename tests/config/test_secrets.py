"""A config problem names a secret setting, never the secret (it is often a password
from ``${VAR}``), however the setting was mistyped."""

from __future__ import annotations

import pytest

from swimstream.config.secrets import is_secret_setting, shown_setting_name
from tests.config.documents import problems

SECRET = "Hunter2-s3cret"
NAME_SHAPED_SECRET = "Hunter2s3cret"

BROKER = "app: a\nbroker:\n  bootstrap: localhost:9092\n"
AGENTS = "agents: {v: {class: 'tests.config.standins:Vehicle', route: /v/:id}}\n"


def _problems(settings_yaml: str) -> list[str]:
    return problems(BROKER + settings_yaml + AGENTS, {"KAFKA_PASSWORD": SECRET})


@pytest.mark.parametrize(
    ("settings_yaml", "expected"),
    [
        # A missing colon makes the whole map one string.
        (
            f"  settings:\n    sasl.password {SECRET}\n",
            "broker.settings: expected a mapping of keys to values, got a string "
            "(its text not shown: it may hold a secret)",
        ),
        # As a Java properties file writes it: one key holding name and value.
        (
            f"  settings: {{sasl.password={SECRET}}}\n",
            "broker.settings['sasl.password[hidden]']: not a setting name (letters, digits, "
            "'.', '_' and '-'); write `name: value`, with a colon and a space",
        ),
        (
            f"  settings:\n    sasl.password={SECRET}: x\n",
            "broker.settings['sasl.password[hidden]']: not a setting name (letters, digits, "
            "'.', '_' and '-'); write `name: value`, with a colon and a space",
        ),
        # A password that holds "${" as text, not as a reference.
        (
            f"  settings: {{sasl.password: 'ab${{{SECRET}!}}'}}\n",
            "broker.settings['sasl.password']: a '${...}' is not a variable reference; "
            "write ${NAME} or ${NAME:-default} ($$ for a literal $)",
        ),
        (
            f"  settings: {{ssl.key.password: '${{{NAME_SHAPED_SECRET}:-${{B}}}}'}}\n",
            "broker.settings['ssl.key.password']: the default of ${...:-...} holds a "
            "reference; a default is plain text (nested references are not supported)",
        ),
        # YAML's own errors quote what they stumbled on: an alias, a tag, a character.
        (
            f"  settings:\n    sasl.password: *{SECRET}\n",
            "line 5, column 20: YAML syntax error: found undefined alias [hidden]",
        ),
        (
            f"  settings: {{ssl.key.password: !{SECRET} x}}\n",
            "line 4, column 32: YAML syntax error: could not determine a constructor "
            "for the tag [hidden]",
        ),
        (
            f"  settings:\n    sasl.password: |{SECRET}\n",
            "line 5, column 21: YAML syntax error: expected chomping or indentation "
            "indicators, but found [hidden] (while scanning a block scalar)",
        ),
        (
            f"  pulsar:\n    authentication: {{token: *{SECRET}}}\n",
            "line 5, column 29: YAML syntax error: found undefined alias [hidden]",
        ),
        # The value on a line of its own, below its key.
        (
            f"  settings:\n    sasl.password:\n\n      *{SECRET}\n",
            "line 7, column 7: YAML syntax error: found undefined alias [hidden]",
        ),
    ],
)
def test_a_mistyped_secret_setting_is_named_without_its_value(
    settings_yaml: str, expected: str
) -> None:
    found = _problems(settings_yaml)
    assert found == [expected]
    assert not any(SECRET in line or NAME_SHAPED_SECRET in line for line in found)


def test_yaml_quotes_what_it_stumbled_on_in_another_setting() -> None:
    assert _problems("  settings:\n    linger.ms: *fast\n") == [
        "line 5, column 16: YAML syntax error: found undefined alias 'fast'"
    ]


def test_a_reference_in_another_setting_is_still_quoted() -> None:
    """Only a secret's text is held back: elsewhere the malformed reference helps."""
    assert _problems("  settings: {client.rack: '${1A}'}\n") == [
        "broker.settings['client.rack']: ${1A} is not a variable reference; "
        "write ${NAME} or ${NAME:-default} ($$ for a literal $)"
    ]


def test_a_secret_from_the_environment_passes() -> None:
    with pytest.raises(AssertionError, match="valid"):
        _problems(
            "  settings:\n"
            "    security.protocol: SASL_SSL\n"
            "    sasl.mechanism: SCRAM-SHA-512\n"
            "    sasl.username: svc\n"
            "    sasl.password: ${KAFKA_PASSWORD}\n"
        )


@pytest.mark.parametrize("written", ["01234567", "1.10", "1_000", "12:30", "yes", "0x1F"])
def test_a_secret_yaml_reads_as_no_text_is_refused_for_the_text_it_changed(
    written: str,
) -> None:
    """YAML 1.1 reads 01234567 as an octal number (342391), 1.10 as 1.1, yes as true: the
    client would send that, and the login fail at run, with no word of the YAML."""
    assert _problems(f"  settings:\n    sasl.password: {written}\n") == [
        "broker.settings['sasl.password']: a secret is text, but YAML read this one as a "
        "number or boolean, which may not be what was written (01234567 is the octal "
        "number 342391, 1.10 is 1.1, yes is true): quote it"
    ]


def test_a_number_in_another_setting_passes() -> None:
    with pytest.raises(AssertionError, match="valid"):
        _problems("  settings: {linger.ms: 5, socket.keepalive.enable: yes}\n")


@pytest.mark.parametrize(
    "name",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.client.credentials.client.secret",  # (an alias)
        "sasl.oauthbearer.assertion.private.key.passphrase",
    ],
)
def test_passwords_and_client_secrets_are_secrets(name: str) -> None:
    assert is_secret_setting(name)


def test_tuning_is_no_secret() -> None:
    assert not is_secret_setting("linger.ms")
    assert not is_secret_setting("security.protocol")


def test_a_name_is_shown_up_to_where_it_stops_being_one() -> None:
    assert shown_setting_name("linger.ms") == "linger.ms"
    assert shown_setting_name(f"sasl.password={SECRET}") == "sasl.password[hidden]"
    assert shown_setting_name(f"={SECRET}") == "[hidden]"
