"""An at-least-once checkpoint whose changelog records the broker refused commits nothing.

At least once, a checkpoint's records carry no delivery callback of their own (one per
record would cost a microsecond each): the sink counts refusals, and the checkpoint
looks at that count after its flush. Committing the offsets regardless would leave
state that was never stored behind offsets that say it was, lost at the next restore.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from swimstream.errors import BrokerError
from swimstream.metrics import MetricsRegistry
from swimstream.runtime import Plane
from swimstream.store.checkpoint import Checkpointer
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.tracker import StateTracker
from swimstream.streams.connector import TopicPartition
from swimstream.streams.sinks import DeliveryFailures
from swimstream.testing import open_plane
from tests.store.test_checkpoint_turns import Meter
from tests.streams.refusing import RefusingSink

SOURCE = TopicPartition("readings", 0)


class RefusingChangelog:
    """An at-least-once changelog sink whose broker refuses every record while told to."""

    def __init__(self) -> None:
        self.refusing = False
        self.undelivered = 0
        self._offset = 0

    def produce(
        self,
        *_record: object,
        partition: int | None = None,
        on_written: Callable[[int, int], None] | None = None,
        **_options: object,
    ) -> None:
        if self.refusing:
            self.undelivered += 1
        elif on_written is not None:  # a checkpoint's marker
            on_written(partition or 0, self._offset)
        self._offset += 1

    def produce_many(
        self, _topic: str, records: Iterable[object], *_: object, **__: object
    ) -> None:
        count = len(list(records))
        self.undelivered += count if self.refusing else 0
        self._offset += count

    async def flush(self, timeout: float) -> bool:
        return True  # every report is in (a refusal is a report too)

    def mark(self) -> object:
        return None

    async def flush_to(self, mark: object, timeout: float) -> bool:
        return True


class Source:
    """The runner's side of a checkpoint: the cut it offers, and the commits it gets."""

    transactional = False

    def __init__(self) -> None:
        self.routed = 0
        self.committed: list[dict[TopicPartition, int]] = []
        self.book = self

    def routed_positions(self) -> dict[TopicPartition, int]:
        return {SOURCE: self.routed}

    def hold(self) -> None: ...

    def release(self) -> None: ...

    def checkpointed(self, cut: dict[TopicPartition, int]) -> None:
        self.committed.append(dict(cut))


def checkpointer_of(
    plane: Plane, sink: RefusingChangelog, source: Source, **others: Any
) -> Checkpointer:
    """An at-least-once checkpointer of ``plane`` over the stand-ins above."""
    store = DurableAgentStore(MemoryCommitted())
    tracker = StateTracker(store, lambda _node: 0)
    tracker.attach(plane)
    return Checkpointer(
        plane=plane,
        tracker=tracker,
        store=store,
        sink=sink,  # type: ignore[arg-type]  # the stand-in above
        changelog_topic="app.changelog",
        partitions=1,
        runners=[source],  # type: ignore[list-item]  # the stand-in above
        exactly_once=False,
        interval=600.0,
        group_metadata=None,
        **others,
    )


async def test_refused_changelog_records_fail_the_checkpoint_and_commit_no_offsets() -> None:
    async with open_plane({"/meter/:id": Meter}) as plane:
        sink = RefusingChangelog()
        source = Source()
        checkpointer = checkpointer_of(plane, sink, source)
        checkpointer.start()
        for routed, refusing in ((1, False), (2, True)):
            await plane.command("/meter/a", "read", routed)
            await plane.settle()
            source.routed = routed
            sink.refusing = refusing
            if refusing:
                with pytest.raises(BrokerError, match="refused 2 records"):
                    await checkpointer.commit_now()
            else:
                await checkpointer.commit_now()
        assert isinstance(checkpointer.failure, BrokerError)  # what stops the service
        await checkpointer.close()
        assert source.committed == [{SOURCE: 1}]  # not the refused checkpoint's offsets


def note(delivered: list[str], value: str, _error: BaseException | None) -> None:
    delivered.append(value)


async def test_a_cut_commits_once_another_protocol_s_sink_delivered_and_not_if_it_failed() -> None:
    """Insights to a Pulsar sink (of an app whose changelog is on Kafka) are in neither
    the checkpoint's transaction nor its flush: its offsets were committed while they
    were in flight, or after the broker refused them, and a restart never replayed them."""
    registry = MetricsRegistry()
    failures = DeliveryFailures(registry)
    other = RefusingSink("alerts", at_delivery=True)
    delivered: list[str] = []
    async with open_plane({"/meter/:id": Meter}) as plane:
        source = Source()
        checkpointer = checkpointer_of(
            plane,
            RefusingChangelog(),
            source,
            other_sinks=[other],
            delivery_failures=lambda: failures.count,
        )
        checkpointer.start()
        for routed, value in ((1, b"fine"), (2, b"refuse")):
            await plane.command("/meter/a", "read", routed)
            await plane.settle()
            source.routed = routed
            report = failures.tracked(functools.partial(note, delivered, value.decode()))
            other.produce("alerts", b"a", value, None, report)  # an insight of the cut
            if value == b"fine":
                await checkpointer.commit_now()
                assert delivered == ["fine"] and source.committed == [{SOURCE: 1}]
            else:
                with pytest.raises(BrokerError, match="1 insight or dead-letter record not"):
                    await checkpointer.commit_now()
        await checkpointer.close()
        assert source.committed == [{SOURCE: 1}]  # not the failed checkpoint's offsets
