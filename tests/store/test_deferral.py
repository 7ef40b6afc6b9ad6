"""The sink in front of a transaction: a record is vouched for only once it is in it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest

from swimstream.store.deferral import DeferringSink


class FullQueue:
    """A transactional client whose queue is full: every record is refused."""

    undelivered = 0
    pending = 0

    def produce_many(
        self,
        topic: str,
        records: Iterable[tuple[bytes | None, bytes | None, int]],
        headers: Sequence[tuple[str, bytes]],
        *,
        reported: bool = True,
    ) -> None:
        raise BufferError("queue full")


def test_a_record_the_client_refuses_is_not_reported_delivered() -> None:
    """Its caller completes the record's effect itself when ``produce`` raises (and
    dead-letters it): reported delivered first, the effect was completed twice, and the
    offset moved past a record still being handled."""
    deferring = DeferringSink(FullQueue())  # type: ignore[arg-type]  # produces only
    reports: list[BaseException | None] = []
    with pytest.raises(BufferError):
        deferring.produce("out", b"k", b"v", None, reports.append)
    assert reports == []
    deferring.hold()  # held for the next transaction, whose commit vouches for it
    deferring.produce("out", b"k", b"v", None, reports.append)
    assert reports == [None]
