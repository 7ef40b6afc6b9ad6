"""Records in, insights out: the service's side of the broker connectors.

The connector protocols (:mod:`swimstream.streams.connector`) are what Kafka and Pulsar
adapters implement; the rest of this package routes records to agents, tracks which
offsets are safe to commit, and turns published insights and lane changes into records.
"""

from swimstream.streams.connector import (
    ChangelogReader,
    ChangelogSink,
    DeliveryCallback,
    InboundRecord,
    Rebalance,
    SinkConnector,
    SourceConnector,
    TopicAdmin,
    TopicPartition,
    TransactionalSink,
)

__all__ = [
    "ChangelogReader",
    "ChangelogSink",
    "DeliveryCallback",
    "InboundRecord",
    "Rebalance",
    "SinkConnector",
    "SourceConnector",
    "TopicAdmin",
    "TopicPartition",
    "TransactionalSink",
]
