"""``broker.settings`` checked by librdkafka itself, without connecting anywhere.

A name librdkafka does not know (``linger.mss``), or a value it refuses, used to pass
``swimstream check`` and stop ``run`` when the first client was made. librdkafka reads
its settings when a client is created, and a client without ``bootstrap.servers``
connects to nothing, so each setting is tried on a client of its own (a consumer for a
consumer-only setting, else a producer, which is what an admin client is inside
librdkafka), closed at once: about a millisecond each.

One setting per client, because librdkafka stops at the first error, and names the
property it resolved an alias to (``linger.ms`` is reported as
``queue.buffering.max.ms``): only a setting tried alone is known to be the one at fault.
Only errors about the setting itself are reported there, an unknown name or a refused
value (``security.protocol: SASL_SSL`` tried alone lacks its ``sasl.username``).

When every setting passes alone, they are tried together, as ``run`` will make its
clients, so that ``check`` refuses what ``run`` would refuse at once: SASL without a
user name or password, or without ``sasl.mechanism`` (librdkafka then takes Kerberos,
which it is built without), OIDC without its token endpoint. librdkafka takes nothing
from the environment, so the settings are all there is; only a file they name may exist
only where the service runs, so settings naming a file (``ssl.ca.location``, ``*.file``)
are left out of that client and to ``run``.

The config package takes this check as a plain function
(:data:`swimstream.config.SettingsCheck`): it imports nothing of the connectors.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from connectors.kafka.first_contact import creation_hint
from connectors.kafka.property_scopes import CONSUMER_ONLY, KNOWN
from connectors.kafka.settings import Setting
from swimstream.config.secrets import HIDDEN, is_secret_setting

_SILENT = logging.Logger("swimstream.kafka.settings_check")
"""The test clients' logger: they log only that they have no broker, which is true."""
_SILENT.disabled = True

_UNKNOWN = "No such configuration property"
_INVALID = "Invalid value"


TOGETHER = ""
"""The name a problem of the settings together is reported under: ``broker.settings``."""


def librdkafka_problems(settings: Mapping[str, Setting]) -> list[tuple[str, str]]:
    """``(name, message)`` for each setting librdkafka refuses by itself, or, when none
    is, ``(TOGETHER, message)`` if it refuses them together."""
    problems: list[tuple[str, str]] = []
    for name, value in settings.items():
        refusal = _refusal(name, value)
        if refusal is not None:
            problems.append((name, refusal))
    if not problems:
        together = _refusal_together(settings)
        if together is not None:
            problems.append((TOGETHER, together))
    return problems


def _refusal_together(settings: Mapping[str, Setting]) -> str | None:
    """Why librdkafka refuses a producer of every setting not naming a file; None if not.

    A producer is what an admin client is inside librdkafka, and the SASL and OIDC
    settings that need each other apply to every client; consumer-only settings would
    only draw warnings from it, so they are left to the check of each alone.
    """
    conf: dict[str, object] = {
        name: value
        for name, value in settings.items()
        if name not in CONSUMER_ONLY and not _names_a_file(name)
    }
    try:
        Producer({**conf, "logger": _SILENT}).close()
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        text = error.str() if isinstance(error, KafkaError) else str(exc)
        text = _without_secrets(text.removeprefix("Failed to create producer: "), conf)
        return f"librdkafka refuses these settings together: {text}{creation_hint(exc, conf)}"
    except (TypeError, ValueError) as exc:
        return f"confluent-kafka refuses these settings together: {exc}"
    return None


def _without_secrets(text: str, settings: Mapping[str, object]) -> str:
    """``text`` with any secret setting's value hidden: librdkafka's messages name
    settings, but nothing promises they never quote one."""
    for name, value in settings.items():
        if is_secret_setting(name) and isinstance(value, str) and value:
            # As a whole word only: a user name "u" is in "must" and in "sasl.username".
            text = re.sub(rf"(?<![\w.]){re.escape(value)}(?![\w.])", HIDDEN, text)
    return text


def _names_a_file(name: str) -> bool:
    """Whether a setting's value is a path, which may exist only where the service runs."""
    return name.endswith((".location", ".file")) or name == "sasl.kerberos.keytab"


def _refusal(name: str, value: Setting) -> str | None:
    """Why librdkafka refuses ``name: value`` on a client of its kind; None if it does not."""
    conf: dict[str, object] = {name: value, "logger": _SILENT}
    try:
        if name in CONSUMER_ONLY:
            Consumer({**conf, "group.id": "swimstream-check"}).close()
        else:
            Producer(conf).close()
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        text = error.str() if isinstance(error, KafkaError) else str(exc)
        if text.startswith(_UNKNOWN):
            return _unknown(name)
        if text.startswith(_INVALID):
            return f"librdkafka refuses the value: {text}"
        return None  # not about this setting alone (see the module docstring)
    except (TypeError, ValueError) as exc:  # refused by confluent-kafka's own layer
        return f"confluent-kafka refuses the value: {exc}"
    return None


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(KNOWN), n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown librdkafka property{hint}"
