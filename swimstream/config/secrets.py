"""Which configuration values are secrets, so that no message prints one back.

``broker.settings`` holds passwords, key passphrases and OAuth client secrets, most
often from ``${VAR}``. librdkafka hides their values in its own log lines
(``sasl.password = [redacted]``), as Kafka's Java clients print ``[hidden]``; a problem
the configuration reports must not undo that by quoting what it refused. So the loader
names such a setting and says what is wrong with it, never the text it holds:

* a value under a secret setting (:func:`is_secret_setting`) is never quoted, not even
  the piece of it that looks like a malformed ``${...}`` reference (a password may
  hold ``${``; write it ``$${``);
* ``broker.settings`` that is no mapping is described by its type, not its text (a
  missing colon makes ``sasl.password hunter2`` one string);
* a key that is no setting name (``sasl.password=hunter2``, as a Java properties file
  writes it) is shown up to where it stops being a name (:func:`shown_setting_name`).

The same holds for the Pulsar clients' secrets under ``broker.pulsar.authentication``
(:data:`PULSAR_SECRET_KEYS`).

The names are librdkafka's own sensitive properties (those it redacts; a test checks
the list against the installed librdkafka) and any name that says password, secret or
passphrase, so an alias or a property added later is covered too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

HIDDEN: Final = "[hidden]"
"""What stands for a secret in a message."""

SECRET_SETTINGS: Final[frozenset[str]] = frozenset(
    {
        "sasl.username",
        "sasl.password",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.assertion.private.key.file",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
        "ssl.ca.pem",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.keystore.password",
    }
)
"""The properties librdkafka marks sensitive and redacts in its configuration dump."""

_SECRET_WORDS = re.compile(r"password|secret|passphrase", re.IGNORECASE)
_SETTING_NAME = re.compile(r"[A-Za-z0-9._\-]+")
_SETTINGS_PATH: Final = ("broker", "settings")
_PULSAR_AUTH_PATH: Final = ("broker", "pulsar", "authentication")
PULSAR_SECRET_KEYS: Final[frozenset[tuple[str, ...]]] = frozenset(
    {("token",), ("basic", "password"), ("oauth2", "private_key")}
)
"""The keys under ``broker.pulsar.authentication`` that hold secrets (an OAuth 2.0
``private_key`` may be the credentials themselves, as a ``data:`` URL)."""


def is_secret_setting(name: str) -> bool:
    """Whether the value of the client setting ``name`` is a secret."""
    return name in SECRET_SETTINGS or _SECRET_WORDS.search(name) is not None


def may_hold_secret(key: str) -> bool:
    """Whether a key of that name may hold a secret wherever it is: a YAML syntax error
    is found before there are key paths to judge by :func:`is_secret_path`."""
    return is_secret_setting(key) or any(key == secret[-1] for secret in PULSAR_SECRET_KEYS)


def holds_secrets(loc: Sequence[int | str]) -> bool:
    """Whether the document value at ``loc`` is ``broker.settings`` or
    ``broker.pulsar.authentication``, or lies in one: a value there may be a secret, or,
    for a mistyped map, contain one."""
    return tuple(loc[:2]) == _SETTINGS_PATH or tuple(loc[:3]) == _PULSAR_AUTH_PATH


def is_secret_path(loc: Sequence[int | str]) -> bool:
    """Whether the document value at ``loc`` is (or lies under) a secret setting."""
    if tuple(loc[:3]) == _PULSAR_AUTH_PATH:
        below = tuple(loc[3:])
        return any(below[: len(key)] == key for key in PULSAR_SECRET_KEYS)
    return (
        len(loc) >= 3
        and tuple(loc[:2]) == _SETTINGS_PATH
        and isinstance(loc[2], str)
        and is_secret_setting(loc[2])
    )


def is_setting_name(key: str) -> bool:
    """Whether ``key`` is shaped like a client setting's name."""
    return _SETTING_NAME.fullmatch(key) is not None


def shown_setting_name(key: str) -> str:
    """``key`` of ``broker.settings`` as a message may show it: whole when it is shaped
    like a setting name, else up to where it stops being one (``sasl.password=...``
    holds the password after the ``=``)."""
    if is_setting_name(key):
        return key
    leading = _SETTING_NAME.match(key)
    return (leading.group() if leading else "") + HIDDEN
