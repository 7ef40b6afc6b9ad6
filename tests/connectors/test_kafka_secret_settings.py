"""The config's list of secret settings covers every property librdkafka itself redacts.

librdkafka marks some properties sensitive and prints ``[redacted]`` for them when it
dumps a client's configuration (``debug: conf``); no API lists them. So each property
is set to a placeholder on a client of its own, and the dump tells which were hidden:
after a confluent-kafka upgrade that adds one, this fails until
:data:`swimstream.config.secrets.SECRET_SETTINGS` names it.
"""

from __future__ import annotations

import logging
import re

from confluent_kafka import Consumer, KafkaException, Producer

from connectors.kafka.property_scopes import CONSUMER_ONLY, KNOWN
from swimstream.config.secrets import is_secret_setting

_REDACTED = re.compile(r"^CONF .*:\s+(\S+) = \[redacted\]$")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _redacted_by_librdkafka() -> set[str]:
    lines = _Lines()
    logger = logging.Logger("librdkafka-conf-dump")
    logger.addHandler(lines)
    redacted: set[str] = set()
    for name in sorted(KNOWN):
        conf: dict[str, object] = {name: "placeholder", "debug": "conf", "logger": logger}
        try:
            if name in CONSUMER_ONLY:
                Consumer({**conf, "group.id": "secret-settings"}).close()
            else:
                Producer(conf).flush(0)
        except (KafkaException, TypeError, ValueError):
            continue  # not a text property: a secret would be text
        for line in lines.lines:
            found = _REDACTED.match(line)
            if found:
                redacted.add(found.group(1))
        lines.lines.clear()
    return redacted


def test_every_property_librdkafka_redacts_is_a_secret_setting() -> None:
    redacted = _redacted_by_librdkafka()
    assert "sasl.password" in redacted  # (the dump was read at all)
    assert sorted(name for name in redacted if not is_secret_setting(name)) == []
