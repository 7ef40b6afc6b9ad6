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
Only errors about the setting itself are reported, an unknown name or a refused value.
A client that fails for another reason (``security.protocol: SASL_SSL`` tried alone
lacks its ``sasl.username``; a TLS file may exist only where the service runs) is left
for ``run`` to report.

The config package takes this check as a plain function
(:data:`swimstream.config.SettingsCheck`): it imports nothing of the connectors.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from connectors.kafka.property_scopes import CONSUMER_ONLY, KNOWN
from connectors.kafka.settings import Setting

_SILENT = logging.Logger("swimstream.kafka.settings_check")
"""The test clients' logger: they log only that they have no broker, which is true."""
_SILENT.disabled = True

_UNKNOWN = "No such configuration property"
_INVALID = "Invalid value"


def librdkafka_problems(settings: Mapping[str, Setting]) -> list[tuple[str, str]]:
    """``(name, message)`` for each setting librdkafka refuses by itself."""
    problems: list[tuple[str, str]] = []
    for name, value in settings.items():
        refusal = _refusal(name, value)
        if refusal is not None:
            problems.append((name, refusal))
    return problems


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
