"""Brokers started by swimstream itself: Kafka (Tansu) and Pulsar (pulsar-lite).

They back ``broker: {kind: embedded}``, ``make demo`` and every test, so that none of
them needs a JVM, Docker or a network beyond loopback. Each is a child process on free
127.0.0.1 ports, proven ready by a real client round trip, with its output in a log
file whose last lines any start-up error quotes. Why each piece is built as it is, and
the quirks measured on each broker, are in the docstrings of the modules below.
"""

from connectors.embedded._process import HOST, EmbeddedBroker, free_ports, start_with_progress
from connectors.embedded.kafka import (
    FAST_CONSUMER_SETTINGS,
    EmbeddedKafka,
    TopicFactory,
    unique_topic_name,
)
from connectors.embedded.pulsar import EmbeddedPulsar

__all__ = [
    "FAST_CONSUMER_SETTINGS",
    "HOST",
    "EmbeddedBroker",
    "EmbeddedKafka",
    "EmbeddedPulsar",
    "TopicFactory",
    "free_ports",
    "start_with_progress",
    "unique_topic_name",
]
