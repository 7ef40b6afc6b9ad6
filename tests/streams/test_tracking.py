"""Offset tracking: never commit past an unfinished record, whatever finishes first."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swimstream.streams.connector import TopicPartition
from swimstream.streams.tracking import InlineAck, OffsetBook, PartitionTracker, record_ack

TP = TopicPartition("readings", 0)


class CapturingDeadLetters:
    """Records what would be dead-lettered; delivery is completed by the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, BaseException, Any]] = []

    def send(self, record: Any, error: BaseException, on_delivery: Any = None) -> None:
        self.sent.append((record, error, on_delivery))


@given(st.lists(st.integers(0, 3), min_size=1, max_size=60), st.data())
def test_committable_is_the_oldest_unfinished_offset(gaps: list[int], data: st.DataObject) -> None:
    offsets: list[int] = []
    position = 0
    for gap in gaps:  # offsets increase, with gaps as on compacted or transactional topics
        position += gap + 1
        offsets.append(position)
    tracker = PartitionTracker(TP)
    for offset in offsets:
        tracker.begin(offset)
    finished: set[int] = set()
    for offset in data.draw(st.permutations(offsets)):
        tracker.complete(offset)
        finished.add(offset)
        unfinished = [o for o in offsets if o not in finished]
        if unfinished:
            if offsets[0] in finished:
                assert tracker.committable == unfinished[0]
            else:
                assert tracker.committable is None
        else:
            assert tracker.committable == offsets[-1] + 1
    assert len(tracker) == 0


@given(st.lists(st.integers(0, 3), min_size=1, max_size=60), st.data())
def test_records_acked_in_any_order_commit_as_the_tracker_would(
    gaps: list[int], data: st.DataObject
) -> None:
    """A record's ack takes it in and out of flight itself (inline for the in-order
    case): the committable offset is the tracker's own answer, whatever the order."""
    offsets = [sum(gaps[: n + 1]) + n for n in range(len(gaps))]
    through_acks, direct = PartitionTracker(TP), PartitionTracker(TP)
    acks = {}
    for offset in offsets:
        acks[offset] = record_ack(through_acks, None, offset, CapturingDeadLetters())  # type: ignore[arg-type]
        direct.begin(offset)
    assert through_acks.routed == direct.routed == offsets[-1] + 1
    for offset in data.draw(st.permutations(offsets)):
        acks[offset](None)
        direct.complete(offset)
        assert through_acks.committable == direct.committable
        assert len(through_acks) == len(direct)
    assert through_acks.committable == offsets[-1] + 1


def test_a_record_completes_only_after_every_effect_it_caused() -> None:
    tracker = PartitionTracker(TP)
    ack = record_ack(tracker, record=None, offset=7, dead_letters=CapturingDeadLetters())  # type: ignore[arg-type]
    insight = ack.fork()
    command = ack.fork()
    grandchild = command.fork()
    ack(None)  # the record's own callback is done
    command(None)
    insight(None)
    assert tracker.committable is None  # the command's own command is still running
    grandchild(RuntimeError("another agent failed; logged by the plane"))
    assert tracker.committable == 8


def test_a_failed_record_completes_once_its_dead_letter_is_delivered() -> None:
    dead_letters = CapturingDeadLetters()
    tracker = PartitionTracker(TP)
    ack = record_ack(tracker, record="the record", offset=3, dead_letters=dead_letters)  # type: ignore[arg-type]
    ack(ValueError("bad"))
    assert tracker.committable is None
    [(record, error, delivered)] = dead_letters.sent
    assert record == "the record" and str(error) == "bad"
    delivered(None)
    assert tracker.committable == 4


def test_revoked_partitions_are_released_with_their_last_committable_offset() -> None:
    book = OffsetBook()
    tracker = book.tracker(TP)
    for offset in (0, 1, 2):
        tracker.begin(offset)
    tracker.complete(0)
    tracker.complete(1)
    assert book.release((TP,)) == {TP: 2}  # not committed yet: the revoke commits it
    assert TP not in book.trackers


def test_a_release_repeats_a_committed_offset_and_late_acks_change_nothing() -> None:
    book = OffsetBook()
    tracker = book.tracker(TP)
    acks = [
        record_ack(tracker, record=f"r{n}", offset=n, dead_letters=CapturingDeadLetters())  # type: ignore[arg-type]
        for n in (0, 1, 2)
    ]
    acks[0](None)
    acks[1](None)
    assert book.to_commit() == {TP: 2}
    assert book.to_commit() == {}
    assert book.to_commit(final=True) == {TP: 2}  # the last commit repeats it
    assert book.release((TP,)) == {TP: 2}  # (that commit may have failed) and so does a revoke
    acks[2](None)  # finishing after the revoke changes nothing
    assert tracker.committable == 2
    assert TP not in book.trackers and book.inflight == 0


def armed(tracker: PartitionTracker, offset: int, dead_letters: Any = None) -> InlineAck:
    """The partition's inline ack armed for the record at ``offset``, as the router does."""
    ack = tracker.inline = tracker.inline or InlineAck(tracker, dead_letters)
    ack.record, ack.offset, ack.tracked = f"r{offset}", offset, None  # type: ignore[assignment]
    tracker.routed = offset + 1
    return ack


def test_an_inline_ack_done_with_nothing_forked_commits_past_its_record_at_once() -> None:
    tracker = PartitionTracker(TP)
    for offset in (4, 5):
        ack = armed(tracker, offset)
        ack(None)
        assert tracker.committable == offset + 1 and len(tracker) == 0
        assert ack.record is None  # (called: the router leaves it armed for the next)
    assert tracker.inline is ack


def test_an_inline_ack_that_forks_waits_for_the_fork_as_a_record_ack_does() -> None:
    tracker = PartitionTracker(TP)
    ack = armed(tracker, 2)
    insight = ack.fork()
    assert len(tracker) == 1  # in flight from the fork on
    ack(None)
    assert tracker.committable is None
    insight(None)
    assert tracker.committable == 3 and len(tracker) == 0


def test_an_inline_ack_of_a_failed_record_completes_once_its_dead_letter_is_delivered() -> None:
    dead_letters = CapturingDeadLetters()
    tracker = PartitionTracker(TP)
    ack = armed(tracker, 0, dead_letters)
    ack(ValueError("bad"))
    assert tracker.committable is None
    [(record, _, delivered)] = dead_letters.sent
    assert record == "r0"
    delivered(None)
    assert tracker.committable == 1


def test_an_inline_ack_kept_by_a_queue_is_in_flight_and_the_partition_arms_another() -> None:
    """A queued command holds the ack past the router's return: the record is in flight
    as any other, ahead of the records routed after it, and never commits without it."""
    tracker = PartitionTracker(TP)
    kept = armed(tracker, 0)
    kept.kept()
    assert len(tracker) == 1 and tracker.inline is None
    later = record_ack(tracker, "r1", 1, CapturingDeadLetters())  # type: ignore[arg-type]
    later(None)
    assert tracker.committable is None
    kept(None)  # (its command ran)
    assert tracker.committable == 2 and len(tracker) == 0


def test_an_inline_ack_done_after_a_revoke_changes_nothing() -> None:
    book = OffsetBook()
    tracker = book.tracker(TP)
    armed(tracker, 0)(None)
    ack = armed(tracker, 1)
    assert book.release((TP,)) == {TP: 1}
    ack(None)
    assert tracker.committable == 1


def test_an_inline_ack_done_behind_an_older_record_in_flight_waits_for_it() -> None:
    tracker = PartitionTracker(TP)
    older = armed(tracker, 0)
    published = older.fork()  # (an insight, delivered later)
    older(None)
    armed(tracker, 1)(None)  # done at once, but behind offset 0
    armed(tracker, 2)(None)
    assert tracker.committable is None and len(tracker) == 3
    published(None)
    assert tracker.committable == 3 and len(tracker) == 0
