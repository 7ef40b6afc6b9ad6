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
:mod:`~connectors.pulsar.settings`, and the private ``_client`` (the only module touching
pulsar-client's untyped API) and ``_errors``.

Measured on the embedded broker, pulsar-lite 0.2.0, with pulsar-client 3.13 (the
settings for it are :data:`~connectors.pulsar.settings.PULSAR_LITE_SETTINGS`):

* **Key_Shared redelivery stalls.** Fresh messages are dispatched right (each key to one
  consumer, spread over the members, acknowledged ones never again). But once a consumer
  leaves or reconnects with messages unacknowledged, the subscription hands out the
  first unacknowledged entry of each key and then nothing, acknowledged or not, until a
  new message is published, which releases one more entry per key (20 messages over 5
  keys, 12 acknowledged: the next consumer got 5 of the 8, then waited forever; the
  same after ``redeliver_unacknowledged_messages``). Shared, Failover and Exclusive
  redeliver all 8. A single instance that restarts hits this too. So Key_Shared stays
  the default (Apache Pulsar) and pulsar-lite gets **Failover**, the nearest type that
  works: every key still goes to one consumer, in order, and a restarted or remaining
  member gets every unacknowledged message; a topic without partitions is read by one
  member while others stand by.
* **Failover takeover by name loses track of held messages**: the active member is the
  one whose consumer name sorts first, so a member joining with a smaller name takes
  over at once, and the old member's unacknowledged messages reach it only after it
  reconnects (new messages flow meanwhile). Handover when the active member leaves
  works. Shared redelivered right in every case measured, but gives keys to any member.
* **Consumers are told apart by the client's consumer id**, which every client numbers
  from 0. A second client's consumer on the same subscription and topic is refused
  ("Consumer 0 already exists"), the connection dropped, and the subscribe times out;
  for every shared type (Key_Shared, Shared, Failover). Apache Pulsar scopes the id to
  the connection. The sources and sinks of one process therefore share one client per
  service URL, so their ids never collide; members in *different processes* cannot
  share a subscription on pulsar-lite.
* Key_Shared dispatch of unbatched messages runs at ~4k messages/s unless the consumer
  acknowledges as it goes (then ~37k/s); Shared, Failover and Exclusive run at 60k-90k/s
  either way, and batched messages at 80k-330k/s. The sink batches by key by default.
* **Batch-index acknowledgement loses messages**: after acknowledging 500 of 1000
  batched messages and resubscribing, 333 came back and 167 unacknowledged ones never
  did. It stays off; the cost is that a partly acknowledged batch is redelivered whole
  (at-least-once duplicates: 666 redelivered, 166 of them already acknowledged).
* Topics are created on first use and are never partitioned (no admin API), so records
  have partition 0 there; partitioned topics on Apache Pulsar are resolved to their
  partitions by the source.
* Null values (tombstones) round-trip. Cumulative acknowledgement on Key_Shared is
  refused (``CumulativeAcknowledgementNotAllowedError``), as on Apache Pulsar.
* With no broker listening, the client retries the refused connection until its
  operation timeout and then says only ``TimeOut``; ``open`` therefore checks with a
  plain TCP connect first and fails in milliseconds, naming the address.
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
