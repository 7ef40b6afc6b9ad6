"""``broker.settings``: the Kafka client settings users pass, and the ones swimstream owns.

Every setting in ``broker.settings`` goes straight to the confluent-kafka clients it
applies to (consumer-only ones to consumers, producer-only ones to producers, the rest to
all, as the Kafka connector reads librdkafka's own table), except the ones swimstream
sets itself: from other keys (the consumer group from ``app``), or because its
guarantees rest on them (offset commits, transactions, idempotent writes). A value given
for one of those would be overridden or would break a guarantee, so it is refused
instead.

Names and values librdkafka itself refuses are checked by the Kafka connector (it builds
a client from each setting, connecting nowhere); the loader takes that check as a
:data:`SettingsCheck` function, since this package imports no client library.

The tables here are the one list of those names. The config refuses all of them, so
``swimstream check`` reports what ``swimstream run`` would; the Kafka connector refuses
each client's own share again when it builds the client (its callers may pass settings
without an app config), reading the same tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

from pydantic import BeforeValidator

from swimstream.config.secrets import is_secret_setting, is_setting_name, shown_setting_name
from swimstream.config.values import TypeDoc
from swimstream.errors import ConfigError

# Each table maps a setting name to how swimstream sets it, as a phrase completing
# "set by swimstream ...".

_CALLBACK = "to its own callback"

CLIENT_OWNED_SETTINGS: Final[Mapping[str, str]] = {
    "bootstrap.servers": "from broker.bootstrap",
    "client.id": "from app and mesh.instance_id",
    "error_cb": _CALLBACK,
    "stats_cb": _CALLBACK,
    "throttle_cb": _CALLBACK,
    "logger": _CALLBACK,
}
"""Set by every Kafka client swimstream opens: consumers, producers and admins."""

CONSUMER_OWNED_SETTINGS: Final[Mapping[str, str]] = {
    **CLIENT_OWNED_SETTINGS,
    "group.id": "from app",
    "group.instance.id": "from mesh.instance_id",
    "enable.auto.commit": "from processing.guarantee",
    "enable.auto.offset.store": "from processing.guarantee",
    "auto.offset.reset": "from sources[].offset_reset",
    "on_commit": _CALLBACK,
}
"""Set by the sources' consumers."""

PRODUCER_OWNED_SETTINGS: Final[Mapping[str, str]] = {
    **CLIENT_OWNED_SETTINGS,
    "transactional.id": "from app and mesh.instance_id",
    "enable.idempotence": "to true, so that every record is written once",
    "acks": "to all, as idempotent writes need",
    "request.required.acks": "to all (it is acks), as idempotent writes need",
    "partitioner": "from broker.partitioner",
    "on_delivery": _CALLBACK,
    "dr_cb": _CALLBACK,
    "dr_msg_cb": _CALLBACK,
}
"""Set by the sinks' producer."""

RESERVED_SETTINGS: Final[Mapping[str, str]] = {
    **CONSUMER_OWNED_SETTINGS,
    **PRODUCER_OWNED_SETTINGS,
    # The connector lets direct callers choose this one; an app's sources never read
    # records of aborted transactions (checkpoints and upstream processors write them).
    "isolation.level": "to read_committed",
}
"""Every name ``broker.settings`` refuses, with how swimstream sets it."""


_NOT_A_NAME = (
    "not a setting name (letters, digits, '.', '_' and '-'); write `name: value`, "
    "with a colon and a space"
)


_NOT_UTF8 = (
    "not UTF-8 text: the environment variable it takes holds other bytes (the client "
    "library takes UTF-8 only)"
)


_SECRET_NOT_TEXT = (
    "a secret is text, but YAML read this one as a number or boolean, which may not be "
    "what was written (01234567 is the octal number 342391, 1.10 is 1.1, yes is true): "
    "quote it"
)


def _encodable(setting: str | int | float | bool) -> bool:
    """Whether the client library can take ``setting``: Python reads an environment
    variable's bytes that are not UTF-8 as lone surrogates, which confluent-kafka
    cannot encode (it failed with a SystemError, and ``check`` with a traceback)."""
    if not isinstance(setting, str):
        return True
    try:
        setting.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_settings(value: Any) -> Any:
    """Refuse owned names and values that are not scalars, every one of them at once."""
    if not isinstance(value, Mapping):
        return value  # the dict type's own error says what is wrong
    problems: list[tuple[str, str]] = []
    for name, setting in value.items():
        path = f"[{shown_setting_name(str(name))!r}]"
        if not is_setting_name(str(name)):
            problems.append((path, _NOT_A_NAME))
        elif name in RESERVED_SETTINGS:
            problems.append((path, f"set by swimstream {RESERVED_SETTINGS[name]}; remove it"))
        elif not isinstance(setting, str | int | float | bool):
            problems.append((path, "must be a string, number or boolean"))
        elif is_secret_setting(str(name)) and not isinstance(setting, str):
            # (the client would send the number's digits: another password than written)
            problems.append((path, _SECRET_NOT_TEXT))
        elif not _encodable(setting):
            problems.append((path, _NOT_UTF8))
    if problems:
        raise ConfigError(problems=problems)
    return value


Setting = str | int | float | bool
"""The value of one client setting."""

SettingsCheck = Callable[[Mapping[str, Setting]], list[tuple[str, str]]]
"""Checks client settings against the client library: ``(name, message)`` for each one
it refuses, with the name ``""`` for the settings together
(``connectors.kafka.settings_check.librdkafka_problems``)."""


def usable_settings(value: object) -> dict[str, Setting]:
    """The settings of a raw ``broker.settings`` worth a :data:`SettingsCheck`: those
    with a name and a value of the right type that swimstream does not own (the others
    are reported by the validation already)."""
    if not isinstance(value, Mapping):
        return {}
    return {
        name: setting
        for name, setting in value.items()
        if isinstance(name, str)
        and is_setting_name(name)
        and isinstance(setting, str | int | float | bool)
        and _encodable(setting)
        and name not in RESERVED_SETTINGS
    }


ClientSettings = Annotated[
    dict[str, Setting],
    BeforeValidator(_check_settings),
    TypeDoc("map of setting name to string, number or boolean"),
]
"""The type of ``broker.settings``."""
