"""The librdkafka settings swimstream's Kafka clients start from, and the ones it owns.

Every client is built as ``defaults | user settings | owned settings``: the user's
``broker.settings`` may tune anything (``linger.ms``, ``security.protocol``, ...) except
the settings swimstream's guarantees rest on, which are refused with a
:class:`~swimstream.errors.ConfigError` naming them rather than silently overridden.

Of the user's settings each client takes those that apply to it (:func:`applicable`):
``broker.settings`` is one map for every client, and librdkafka logs a CONFWARN line at
each client's creation for every property meant for the other client type, so consumer
tuning such as ``fetch.wait.max.ms`` would otherwise be warned about at every producer's
start.

Why each default is what it is (figures measured on the embedded Tansu broker, see
:mod:`connectors.embedded.kafka`; on Apache Kafka every choice below is harmless):

Consumer

* ``partition.assignment.strategy=range``: partition p of every source topic goes to the
  same member, which is how shard p gets one owner (README, "Kafka placement"). librdkafka's
  ``cooperative-sticky`` does not keep topics co-partitioned. Overridable; with durable
  state and several source topics the config refuses another assignor.
* ``fetch.queue.backoff.ms=10``: librdkafka postpones a partition's next fetch by this
  much when its local queue is over the threshold; with the default 1000 ms a consumer
  that drains its queue quickly idles for the rest of the second (1M records: 7.4 s with
  the default, 1.8 s with 10 ms).
* ``fetch.wait.max.ms=50``: Tansu answers a waiting Fetch only when this expires, so it
  bounds produce-to-consume latency (measured ≤ 26 ms at 50, ≤ 52 ms at 100, ≤ 250 ms at
  the default 500). A digital twin is only as live as its input; the price on Apache Kafka,
  which answers as soon as data arrives, is 20 empty fetches a second per idle broker.
* ``session.timeout.ms=10000`` and ``heartbeat.interval.ms=1000``: a crashed dynamic member
  blocks its partitions until its session expires (measured 18 s at 10 s, about 50 s at
  the default 45 s), and Tansu holds every group join for half the session timeout (5 s
  here, 23 s at the default). Lower than 10 s risks false expiries during GC pauses or
  long rebalance callbacks; a 1 s heartbeat hands a joining member its share about a
  second sooner than the default 3 s.
* ``enable.partition.eof=true``: the end-of-partition event tells the position of a
  partition that delivered nothing (empty, or fully consumed before this member got it),
  so lag and readiness are known without ListOffsets, which Tansu answers wrongly.
* ``isolation.level=read_committed`` (librdkafka's default, stated): sources may be written
  transactionally by upstream processors, ours included.
* ``statistics.interval.ms=1000``: the per-broker statistics are how the source notices a
  broker that stopped answering without closing its socket (see
  :mod:`connectors.kafka.health`).
* ``coordinator.query.interval.ms=500`` (librdkafka's default is ten minutes): a partition
  paused as it is assigned (durable state restores it first), then resumed before its
  first fetch, starts fetching only once it has its committed offset from the group,
  and that waited for a round of librdkafka's group handler, which each coordinator
  query brings forward. Measured on the embedded Tansu, from the resume to the
  partition's end: 0.75 to 0.86 s with the default or with 1 s, 0.20 s with 500 ms,
  0.10 s with 100 ms; an instance starting, or gaining a partition from another, was
  unready that much longer. The cost is a FindCoordinator request (a metadata lookup)
  every half second.

Producer

* ``enable.idempotence=true`` (which implies ``acks=all`` and at most 5 requests in
  flight): an acknowledged record is durable and written once, even across retries.
* ``linger.ms=5``: at high rates batches fill long before 5 ms; at low rates a record
  waits at most 5 ms, well inside the live path's budget.
* ``batch.num.messages=10000`` and ``batch.size=1000000``: librdkafka's defaults, kept
  explicit; small JSON records reach 1 MB batches at about 10k records.
* ``queue.buffering.max.kbytes=65536``: librdkafka would otherwise buffer up to 1 GB for
  an unreachable broker before ``produce`` pushes back; 64 MB is about a second of a busy
  instance's output, enough to ride out a leader change.
* ``allow.auto.create.topics=false``: librdkafka's producer default (true) lets a typo in
  a sink's topic create a topic with the broker's defaults (on Tansu, one with an empty
  config). swimstream creates its topics explicitly (:mod:`connectors.kafka.admin`); a
  record for a missing topic fails its delivery instead.
* ``compression.type=lz4``: JSON shrinks several-fold for little CPU, spent in
  librdkafka's threads rather than Python's (Tansu stores lz4 batches as they are).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypeVar

from connectors.kafka.property_scopes import CONSUMER_ONLY, PRODUCER_ONLY
from swimstream.config import (
    CLIENT_OWNED_SETTINGS,
    CONSUMER_OWNED_SETTINGS,
    PRODUCER_OWNED_SETTINGS,
)
from swimstream.errors import ConfigError

Setting = str | int | float | bool
Settings = Mapping[str, Setting]
ClientKind = Literal["consumer", "producer", "admin"]
V = TypeVar("V")

CONSUMER_DEFAULTS: Final[Mapping[str, Setting]] = {
    "partition.assignment.strategy": "range",
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 50,
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
    "enable.partition.eof": True,
    "isolation.level": "read_committed",
    "statistics.interval.ms": 1_000,
    "coordinator.query.interval.ms": 500,
}

PRODUCER_DEFAULTS: Final[Mapping[str, Setting]] = {
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "queue.buffering.max.kbytes": 65_536,
    "compression.type": "lz4",
    "allow.auto.create.topics": False,
}

ADMIN_DEFAULTS: Final[Mapping[str, Setting]] = {"allow.auto.create.topics": False}
"""An AdminClient is a producer inside librdkafka, so its Metadata requests for a named
topic would create the topic (with the broker's defaults) on brokers that allow it."""

# Set from constructor arguments or required by swimstream's guarantees; listed once, in
# the config package, whose check of ``broker.settings`` refuses the same names.
CONSUMER_OWNED: Final = frozenset(CONSUMER_OWNED_SETTINGS)
PRODUCER_OWNED: Final = frozenset(PRODUCER_OWNED_SETTINGS)
ADMIN_OWNED: Final = frozenset(CLIENT_OWNED_SETTINGS)


_NOT_FOR: Final[Mapping[ClientKind, frozenset[str]]] = {
    "consumer": PRODUCER_ONLY,
    "producer": CONSUMER_ONLY,
    # librdkafka runs an admin client as a producer; producer-only properties are not
    # warned about there, but nothing in an admin client uses them either.
    "admin": CONSUMER_ONLY | PRODUCER_ONLY,
}


def applicable(settings: Mapping[str, V], kind: ClientKind) -> dict[str, V]:
    """The settings that apply to a client of ``kind``, by librdkafka's own scopes.

    A name librdkafka does not list as consumer- or producer-only goes to every client,
    so a misspelled one still fails at the first client's creation ("No such
    configuration property") instead of vanishing.
    """
    left_out = _NOT_FOR[kind]
    return {name: value for name, value in settings.items() if name not in left_out}


_KIND_OF: Final[Mapping[str, ClientKind]] = {
    "source": "consumer",
    "sink": "producer",
    "admin": "admin",
}


def merge(
    defaults: Mapping[str, Setting],
    settings: Settings | None,
    owned_keys: frozenset[str],
    owned: Mapping[str, object],
    *,
    client: Literal["source", "sink", "admin"],
) -> dict[str, Any]:
    """``defaults | settings | owned``, refusing user settings that swimstream owns and
    leaving out those that do not apply to the client."""
    settings = settings or {}
    refused = sorted(name for name in settings if name in owned_keys)
    if refused:
        raise ConfigError(
            problems=[
                (f"settings[{name!r}]", f"the {client} sets it itself; remove it")
                for name in refused
            ]
        )
    return {**defaults, **applicable(settings, _KIND_OF[client]), **owned}


def stall_seconds(config: Mapping[str, object]) -> float:
    """How long a broker may leave a request unanswered before the client calls it
    unreachable: three seconds beyond the longest legitimate Fetch wait."""
    wait_ms = config.get("fetch.wait.max.ms", 500)
    wait = float(wait_ms) / 1000 if isinstance(wait_ms, int | float | str) else 0.5
    return 3.0 + wait


def is_cooperative(config: Mapping[str, object]) -> bool:
    """Whether the assignment strategy hands out partitions incrementally."""
    return "cooperative" in str(config.get("partition.assignment.strategy", "range"))
