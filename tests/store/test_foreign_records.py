"""A changelog holding records swimstream did not write (a foreign producer's)."""

from __future__ import annotations

import logging

import pytest

from swimstream.store.changelog import (
    CHECKPOINT_HEADER,
    MARKER_KEY,
    SOURCE_HEADER,
    WRITER_HEADER,
    marker_key,
)
from swimstream.streams import TopicPartition
from tests.store.test_recovery import changelog_record, checkpoint, restored, status

pytestmark = pytest.mark.usefixtures("held_tail_kept")

SOURCES = {TopicPartition("readings", 0): 10}


@pytest.mark.parametrize(
    ("key", "value", "record_headers"),
    [
        (b"device-7", b'{"temp": 21}', []),
        (b"\xff\xfe binary", b"x", []),
        (b"/device/7#status", b"x", [("swimstream.checkpoint", b"not a number")]),
        (marker_key("other"), b"not json", []),
        (MARKER_KEY, b'{"checkpoint": "x"}', []),
        (
            b"/device/8#status",
            b"x",
            [(CHECKPOINT_HEADER, b"1"), (SOURCE_HEADER, b"{}"), (WRITER_HEADER, b"garbage")],
        ),
        (marker_key("other"), None, []),
        (marker_key("other"), b'{"checkpoint": 7, "sources": {"readings": 3}}', []),
    ],
    ids=[
        "plain key",
        "binary key",
        "bad checkpoint header",
        "bad marker",
        "marker without sources",
        "bad writer",
        "marker tombstone",
        "marker of no cut",
    ],
)
def test_a_foreign_record_is_skipped_with_a_warning_and_the_rest_restored(
    key: bytes,
    value: bytes | None,
    record_headers: list[tuple[str, bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = checkpoint(0, 0, 1, 5, {"/device/1": "on"}, marker=True)
    foreign = changelog_record(0, 2, key, value, record_headers)
    second = checkpoint(0, 3, 2, 10, {"/device/2": "off"}, marker=True)
    with caplog.at_level(logging.WARNING, "swimstream.recovery"):
        committed, report = restored([*first, foreign, *second], SOURCES)
    assert status(committed, "/device/1") == "on"
    assert status(committed, "/device/2") == "off"
    assert report.applied_checkpoints == 2
    assert "app.changelog[0] at offset 2" in caplog.text
