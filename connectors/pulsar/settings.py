"""The settings of the Pulsar source and sink, each declared once with its reason.

Defaults are chosen for the live path of digital twins and measured on the embedded
pulsar-lite broker (see :mod:`connectors.pulsar`); all of them are harmless on Apache
Pulsar. A mapping of the same names (what ``broker.settings`` holds in YAML) is accepted
wherever the settings object is, and unknown names are refused with a
:class:`~swimstream.errors.ConfigError` naming them rather than ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from connectors.pulsar.security import NO_SECURITY, PulsarSecurity
from swimstream.errors import ConfigError

SubscriptionType = Literal["key_shared", "shared", "failover", "exclusive"]
InitialPosition = Literal["earliest", "latest"]
Setting = str | int | float | bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PulsarSettings:
    """How the Pulsar clients behind a source or sink are configured."""

    subscription_type: SubscriptionType = "key_shared"
    """``key_shared`` gives every key to one consumer of the subscription, the way a
    Kafka partition gives every key to one group member, so an agent's events arrive in
    order at one instance, and spreads keys over as many members as there are.
    ``failover`` gives each topic partition to one member (Kafka's model; a topic
    without partitions is read by one member while the others stand by). ``shared``
    spreads records without regard to keys: forwarding over the mesh still brings each
    to its owner, but two members may hand one key's records over in a different order.
    ``exclusive`` admits one member only. On pulsar-lite only ``shared`` delivers
    correctly (:data:`PULSAR_LITE_SETTINGS`)."""

    initial_position: InitialPosition = "earliest"
    """Where a new subscription starts. ``earliest``: a twin built from a topic's history
    is the point of the product; an existing subscription resumes where it was."""

    receiver_queue_size: int = 1000
    """Messages the client prefetches per topic partition. This is also the memory bound
    while a partition is paused: the queue fills, then the broker stops sending."""

    operation_timeout: float = 10.0
    """Seconds for subscribe, producer creation and lookups (rounded up to whole seconds,
    the client's unit). An unreachable broker is reported within ``connection_timeout``
    by a TCP check first; this bounds a broker that accepts but does not answer."""

    connection_timeout: float = 5.0
    """Seconds for one TCP connection attempt, and for the reachability check in
    ``open``."""

    batching: bool = True
    """Batch records per key (Pulsar's key-based batching, so a Key_Shared consumer still
    gets each key whole). Measured on pulsar-lite: 31k records/s produced with batching,
    20k without; a Key_Shared subscription that acknowledges late dispatches unbatched
    messages at only ~4k/s there."""

    batching_max_delay: float = 0.005
    """Seconds a record may wait for its batch to fill: at high rates batches fill first;
    at low rates 5 ms stays well inside the live path's budget."""

    batching_max_messages: int = 1000
    """Records per batch at most."""

    max_pending_messages: int = 10_000
    """Records per topic handed to the client at once; more wait in the sink until
    acknowledgements free room (see the sink's docstring)."""

    send_timeout: float = 300.0
    """Seconds before an unacknowledged record fails with a timeout; also how long the
    sink keeps trying to make a topic's producer while the broker does not answer. As
    librdkafka's ``message.timeout.ms`` (300 s) rather than the Pulsar client's 30 s: a
    record that fails stops the service (its record stays unfinished), so a broker
    outage of half a minute stopped a Pulsar instance where a Kafka one rode it out."""

    close_timeout: float = 10.0
    """Seconds the sink's ``close`` waits for records in flight before closing anyway."""

    security: PulsarSecurity = NO_SECURITY
    """Authentication and TLS (``broker.pulsar``), for every client behind the source or
    sink: its consumers' or producers', and the readiness probe's."""

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        for name, choices in (
            ("subscription_type", get_args(SubscriptionType)),
            ("initial_position", get_args(InitialPosition)),
        ):
            if getattr(self, name) not in choices:
                problems.append((name, f"must be one of {', '.join(choices)}"))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("int", "float") and (isinstance(value, bool) or value <= 0):
                problems.append((field.name, "must be a positive number"))
        if problems:
            raise ConfigError(problems=problems)

    @classmethod
    def of(cls, settings: PulsarSettings | Mapping[str, Setting] | None) -> PulsarSettings:
        """The settings object for what a caller passed: itself, a mapping or nothing."""
        if settings is None:
            return cls()
        if isinstance(settings, PulsarSettings):
            return settings
        known = {field.name: field.type for field in dataclasses.fields(cls)}
        problems = [(name, "unknown Pulsar setting") for name in settings if name not in known]
        for name, value in settings.items():
            expected = known.get(name)
            if expected == "bool" and not isinstance(value, bool):
                problems.append((name, "must be true or false"))
            elif expected in ("int", "float") and not isinstance(value, int | float):
                problems.append((name, "must be a number"))
            elif expected == "int" and not isinstance(value, int):
                problems.append((name, "must be a whole number"))
            elif expected == "PulsarSecurity" and not isinstance(value, PulsarSecurity):
                problems.append((name, "must be a PulsarSecurity"))
        if problems:
            raise ConfigError(problems=problems)
        return cls(**settings)  # type: ignore[arg-type]  # names and types checked above


PULSAR_LITE_SETTINGS = PulsarSettings(subscription_type="shared")
"""The settings for the embedded pulsar-lite broker (tests, demo, ``kind: embedded``).

Shared, because it is the one subscription type pulsar-lite 0.2.0 delivers correctly
(measured; the figures are in :mod:`connectors.pulsar`): Key_Shared stalls redelivery
after a consumer leaves or reconnects, which breaks at-least-once even for a single
instance that restarts; Failover and Exclusive deliver the same messages again and
again within one session. Shared delivered every message once and redelivered every
unacknowledged one, whether its consumer left, restarted or another took over. What it
gives up is key affinity, and only when several members read one subscription, which on
pulsar-lite can happen only inside one process (see the consumer id collision).
"""
