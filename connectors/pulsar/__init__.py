"""Pulsar behind the service's source and sink contract (:mod:`swimstream.streams.connector`).

:class:`PulsarSource` reads topics through a Key_Shared subscription, so each key has one
consumer the way each Kafka partition has one group member, and numbers what it
receives with local offsets that ``commit`` turns into acknowledgements.
:class:`PulsarSink` produces with one batching producer per topic. Both are
**at-least-once**; exactly-once needs Kafka transactions and is Kafka-only. Client errors
become :class:`~swimstream.errors.BrokerError` at this boundary, with what was being done
and what usually causes the error.

The modules, one job each: :mod:`~connectors.pulsar.source`, :mod:`~connectors.pulsar.sink`,
:mod:`~connectors.pulsar.records` (Kafka-shaped records from Pulsar messages and back),
:mod:`~connectors.pulsar.offsets` (local offsets to message ids),
:mod:`~connectors.pulsar.acks` (acknowledgements the client may lose at a disconnect),
:mod:`~connectors.pulsar.settings`, :mod:`~connectors.pulsar.security` (authentication
and TLS, from ``broker.pulsar``), :mod:`~connectors.pulsar.handshake` (whether the
service URL leads to a Pulsar broker at all), :mod:`~connectors.pulsar.first_contact`
(whether the broker accepts the client's TLS and credentials, and which key to check
when not), :mod:`~connectors.pulsar.oauth2` (the OAuth 2.0 token it asks the issuer
for first), and the private ``_client`` (the only module touching pulsar-client's untyped
API) and ``_errors``.

Measured on the embedded broker, pulsar-lite 0.2.0, with pulsar-client 3.13. The
settings for it are :data:`~connectors.pulsar.settings.PULSAR_LITE_SETTINGS`: a
**Shared** subscription, the only type it delivers correctly.

* **Key_Shared stalls redelivery.** Fresh messages are dispatched right (each key to one
  consumer, spread over the members). But once a consumer leaves or reconnects with
  messages unacknowledged, the subscription hands out the first unacknowledged entry of
  each key and then nothing, acknowledged or not, until a new message is published, which
  releases one more entry per key (20 messages over 5 keys, 12 acknowledged: the next
  consumer got 5 of the 8, then waited; the same after
  ``redeliver_unacknowledged_messages``). A single instance that restarts hits this.
  Unbatched dispatch runs at ~4k messages/s unless the consumer acknowledges as it goes
  (then ~37k/s), and 50k batched messages acknowledged as received came 50,310 times.
  Even fresh messages may come twice: with the CPU contended, a producer batch reached
  its consumer twice before any acknowledgement, as the same message ids with
  redelivery count 0 (2 members, 200 messages over 20 keys: 1 run in 500; 2,000
  messages: 2 runs in 200). At-least-once allows it; exactly-once counts do not hold.
* **Failover and Exclusive deliver messages twice within a session**, with no reconnect
  (``redelivery_count`` 0): 3,000 messages arrived 3,774 times on Failover; 50k batched
  messages, not acknowledged, 144,738 times on Failover and 93,476 times on Exclusive.
  Failover also loses track of held messages when a member joining with a consumer name
  that sorts first takes over: they reach it only after it reconnects.
* **Shared is right**: 50k messages, batched or not, acknowledged or not, arrived 50,000
  times each time; unacknowledged ones were redelivered whether their consumer left,
  restarted or another joined. So Key_Shared stays the default (Apache Pulsar) and
  pulsar-lite gets Shared, the nearest type that works; the key affinity it gives up
  matters only with several members on one subscription, which pulsar-lite allows only
  inside one process (next point).
* **Consumers are told apart by the client's consumer id**, which every client numbers
  from 0. A second client's consumer on the same subscription and topic is refused
  ("Consumer 0 already exists"), the connection dropped, and the subscribe times out;
  for every shared type. Apache Pulsar scopes the id to the connection. The sources of
  one process therefore share one client per service URL, so their ids never collide;
  members in *different processes* cannot share a subscription on pulsar-lite.
* **Batch-index acknowledgement loses messages**: after acknowledging 500 of 1000
  batched messages and resubscribing, 333 came back and 167 unacknowledged ones never
  did. It stays off; the cost is that a partly acknowledged batch is redelivered whole
  (at-least-once duplicates).
* Topics are created on first use and are never partitioned (no admin API), so records
  have partition 0 there; partitioned topics on Apache Pulsar are resolved to their
  partitions by the source.
* Null values (tombstones) round-trip. Cumulative acknowledgement on Key_Shared is
  refused (``CumulativeAcknowledgementNotAllowedError``), as on Apache Pulsar.
* With no broker listening, the client retries the refused connection until its
  operation timeout and then says only ``TimeOut``; ``open`` therefore checks with a
  plain TCP connect first and fails in milliseconds, naming the address.
* Throughput through this package, 50k records of ~12 bytes with PULSAR_LITE_SETTINGS,
  produced and consumed concurrently, first produce to last consume (21 runs on 2 cores
  shared with the broker, and in some runs with other test suites): 12k-27k records/s
  over 100 keys, 6k-17k/s over 1000 keys (the key-based batches get small). Produced
  first, consumed after: 6k-39k/s produced, 16k-190k/s consumed.
"""

from connectors.pulsar.records import PulsarRecord
from connectors.pulsar.settings import PULSAR_LITE_SETTINGS, PulsarSettings, SubscriptionType
from connectors.pulsar.sink import PulsarSink
from connectors.pulsar.source import PulsarSource

__all__ = [
    "PULSAR_LITE_SETTINGS",
    "PulsarRecord",
    "PulsarSettings",
    "PulsarSink",
    "PulsarSource",
    "SubscriptionType",
]
