"""The Kafka connectors: a consumer-group source, an idempotent (optionally
transactional) sink, and a topic admin, implementing :mod:`swimstream.streams.connector`
over confluent-kafka.

Modules, one job each:

* :mod:`~connectors.kafka.source` — :class:`KafkaSource`; its docstring has the threading
  model and the measured consume rate.
* :mod:`~connectors.kafka.sink` — :class:`KafkaSink`, with transactions.
* :mod:`~connectors.kafka.admin` — :class:`KafkaAdmin`.
* :mod:`~connectors.kafka.settings` — the client defaults, each with its reason, and the
  settings swimstream owns.
* :mod:`~connectors.kafka.rebalance`, :mod:`~connectors.kafka.deferred`,
  :mod:`~connectors.kafka.loop` — how rebalances and deferred calls cross threads.
* :mod:`~connectors.kafka.health` — what ``connected`` means.
* :mod:`~connectors.kafka.errors` — librdkafka's errors as
  :class:`~swimstream.errors.BrokerError`.
"""

from connectors.kafka.admin import KafkaAdmin
from connectors.kafka.errors import KafkaBrokerError
from connectors.kafka.settings import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS
from connectors.kafka.sink import KafkaSink
from connectors.kafka.source import KafkaSource

__all__ = [
    "CONSUMER_DEFAULTS",
    "PRODUCER_DEFAULTS",
    "KafkaAdmin",
    "KafkaBrokerError",
    "KafkaSink",
    "KafkaSource",
]
