"""The Pulsar connector's parts that need no broker: settings, partition names, and the
ledger of local offsets (see tests/connectors/test_pulsar_source.py for the source)."""

from __future__ import annotations

import pytest

from connectors.pulsar import PulsarSettings, PulsarSource
from connectors.pulsar._client import producer_options
from connectors.pulsar.acks import AT_RISK, AckBook
from connectors.pulsar.oauth2 import token_lifetime
from connectors.pulsar.offsets import OffsetLedger
from connectors.pulsar.source import split_partition
from swimstream.errors import ConfigError
from swimstream.streams.connector import TopicPartition


def test_settings_are_validated_with_their_names() -> None:
    with pytest.raises(ConfigError, match="topics"):
        PulsarSource("pulsar://127.0.0.1:6650", "twins", "events")
    with pytest.raises(ConfigError) as raised:
        PulsarSource("pulsar://127.0.0.1:6650", "twins", ["e"], settings={"recv_queue": 5})
    assert raised.value.problems == [("recv_queue", "unknown Pulsar setting")]
    with pytest.raises(ConfigError) as raised:
        PulsarSettings.of({"subscription_type": "keyshared", "receiver_queue_size": 0})
    assert [path for path, _ in raised.value.problems] == [
        "subscription_type",
        "receiver_queue_size",
    ]


def test_partition_numbers_come_from_the_topic_name_suffix() -> None:
    assert split_partition("persistent://public/default/events-partition-12") == (
        "persistent://public/default/events",
        12,
    )
    assert split_partition("events") == ("events", 0)
    assert split_partition("events-partition-x") == ("events-partition-x", 0)


def test_the_ledger_releases_ids_below_a_committed_offset_once() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    partition = TopicPartition("events", 0)
    assert [ledger.assign(partition, f"id{n}") for n in range(5)] == [0, 1, 2, 3, 4]
    assert ledger.release(partition, 3) == ["id0", "id1", "id2"]
    assert ledger.release(partition, 3) == []
    assert ledger.held(partition) == 2
    assert ledger.release(partition, 100) == ["id3", "id4"]
    assert ledger.next_offset(partition) == 5
    assert ledger.release(TopicPartition("other", 0), 10) == []


def test_the_ledger_drops_a_message_held_already_and_takes_it_once_released() -> None:
    ledger: OffsetLedger[str] = OffsetLedger(str.lower)
    partition = TopicPartition("events", 0)
    assert [ledger.assign(partition, n) for n in ("a", "b", "A", "c", "B")] == [0, 1, None, 2, None]
    assert ledger.repeats == 2
    assert ledger.assign(TopicPartition("events", 1), "a") == 0  # another partition's
    assert ledger.release(partition, 2) == ["a", "b"]
    assert ledger.assign(partition, "a") == 3  # delivered again once acknowledged: new
    assert ledger.held(partition) == 2


def test_acknowledgements_at_risk_are_given_again_once_connected_and_then_forgotten() -> None:
    book: AckBook[str] = AckBook()
    book.given([("id-a", "a")], now=10.0)
    book.given([("id-b", "b")], now=10.5)
    assert book.copy("a") == "id-a"  # a copy arriving soon after its acknowledgement
    assert book.seen(True, now=10.0 + AT_RISK + 0.1) == []
    assert book.copy("a") is None and book.copy("b") == "id-b"  # a's time passed
    assert book.seen(False, now=20.0) == []  # the connection went: b may be lost
    book.held([("id-c", "c")])  # committed while disconnected
    assert book.copy("c") == "id-c" and book.copy("c") is None  # its copy came first
    book.held([("id-c", "c")])
    due = book.seen(True, now=99.0)  # connected again
    assert sorted(due) == [("id-b", "b"), ("id-c", "c")]
    assert book.seen(True, now=99.0) == [] and not book.unsent


@pytest.mark.parametrize("partitions", [1, 6, 100, 10_000])
def test_a_partition_s_producer_queue_takes_all_the_sink_hands_a_topic(partitions: int) -> None:
    """The client caps each partition's queue at the least of ``max_pending_messages``
    and the across-partitions limit over the partitions (50,000 by default): on a topic
    of six partitions a hot key's partition took 8,333, fewer than the 10,000 the sink
    hands a topic, and the client blocked the event loop at the 8,334th."""
    settings = PulsarSettings()
    options = producer_options(settings)
    per_partition = min(
        options["max_pending_messages"],
        options["max_pending_messages_across_partitions"] // partitions,
    )
    assert per_partition == settings.max_pending_messages


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [
        (3600, 3600),
        ("3600", 3600),
        (0, 0),
        ("0", 0),
        (0xFFFF_FFFF, 0xFFFF_FFFF),
        (0x1_0000_0000, None),  # (beyond the client's 32 bits)
        ("9" * 400, None),
        (-5, None),
        ("-5", None),
        (3600.0, None),
        ("3600.0", None),
        ("1e3", None),
        (" 3600", None),
        ("٣٦٠٠", None),  # (digits, but not the ones the client reads)
        (True, None),
        (None, None),
        (float("nan"), None),
        (float("inf"), None),
        ([3600], None),
    ],
)
def test_a_token_lifetime_is_read_as_pulsar_client_reads_it(
    expires_in: object, seconds: int | None
) -> None:
    """A whole number of seconds within 32 bits, as a JSON number or digits in a string;
    anything else the client reads as no lifetime at all."""
    assert token_lifetime(expires_in) == seconds
