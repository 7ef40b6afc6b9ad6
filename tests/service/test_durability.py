"""The local store's faults at start: the instance falls back and serves right state."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from swimstream.config import AppConfig, parse_config
from swimstream.crdt import RegisterSnapshot, decode_snapshot
from swimstream.errors import BrokerError, StoreError
from swimstream.service.durability import Durability
from swimstream.store.committed import MemoryCommitted
from swimstream.store.recovery import recover
from swimstream.store.sqlite import SQLiteStore
from swimstream.streams import TopicPartition
from swimstream.testing import MemoryRecord
from tests.config.documents import document
from tests.store.test_recovery import ListReader, checkpoint
from tests.store.test_sqlite import damage_the_second_half

SOURCE = TopicPartition("readings", 0)


def test_a_store_the_restore_finds_damaged_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    """An open that reads only the first pages passes; the restore's write hits the
    damage. The start stopped there, and again at every start, where a store found
    damaged at open is set aside and rebuilt from the changelog (health names it)."""
    config = parse_config(document(store={"path": str(tmp_path)}), {})
    store = SQLiteStore(tmp_path / "one.sqlite").open()
    records = checkpoint(0, 0, 1, 10, {f"/vehicle/{i}": "old" for i in range(2000)}, True)
    reader = ListReader(records, {TopicPartition("readings", 0): 10})
    asyncio.run(recover(store, reader, "traffic.changelog", 1, reader.committed))
    store.close()
    damage_the_second_half(tmp_path / "one.sqlite")
    tail = checkpoint(0, 2001, 2, 20, {f"/vehicle/{i}": "new" for i in range(2000)}, True)
    reader = ListReader(records + tail, {TopicPartition("readings", 0): 20})

    durability = Durability(config, "one", reader, 1, lambda node: 0)
    committed = asyncio.run(durability.open([TopicPartition("readings", 0)])).committed
    try:
        assert durability.fault is not None and "rebuilt from the changelog" in durability.fault
        stored = committed.load("/vehicle/7")
        assert stored is not None
        snapshot = decode_snapshot(stored["status"])
        assert isinstance(snapshot, RegisterSnapshot) and snapshot.value == "new"
        assert list(tmp_path.glob("one.sqlite.corrupt-*"))
    finally:
        durability.close()


def test_with_the_embedded_broker_a_store_of_an_earlier_run_is_set_aside(
    tmp_path: Path,
) -> None:
    """The embedded broker keeps everything in memory, so a restarted `run` found its
    changelog empty and refused the store of the first run as another changelog's
    (exit 1 at every start until the store was deleted by hand)."""
    config = parse_config(document(broker={"kind": "embedded"}, store={"path": str(tmp_path)}), {})
    store = SQLiteStore(tmp_path / "one.sqlite").open()
    records = checkpoint(0, 0, 1, 10, {"/vehicle/7": "old"}, True)
    reader = ListReader(records, {TopicPartition("readings", 0): 10})
    asyncio.run(recover(store, reader, "traffic.changelog", 1, reader.committed))
    store.close()

    empty = ListReader([], {})
    durability = Durability(config, "one", empty, 1, lambda node: 0)
    committed = asyncio.run(durability.open([TopicPartition("readings", 0)])).committed
    try:
        assert durability.fault is None
        assert committed.load("/vehicle/7") is None
        assert (tmp_path / "one.sqlite.previous").exists()
    finally:
        durability.close()


def test_a_store_ahead_of_the_committed_offsets_is_rebuilt_to_them(tmp_path: Path) -> None:
    """At least once, checkpoint 2 reached the local store but its offsets' commit never
    landed: the sources resume at checkpoint 1's cut, so the state must be checkpoint
    1's, or the records in between would count twice."""
    config = parse_config(document(store={"path": str(tmp_path)}), {})
    records = checkpoint(0, 0, 1, 10, {"/vehicle/7": "one"}, True) + checkpoint(
        0, 2, 2, 20, {"/vehicle/7": "two"}, True
    )
    store = SQLiteStore(tmp_path / "one.sqlite").open()
    asyncio.run(recover(store, ListReader(records, {}), "traffic.changelog", 1, {SOURCE: 20}))
    store.close()

    durability = Durability(config, "one", ListReader(records, {SOURCE: 10}), 1, lambda node: 0)
    committed = asyncio.run(durability.open([SOURCE])).committed
    try:
        stored = committed.load("/vehicle/7")
        assert stored is not None
        snapshot = decode_snapshot(stored["status"])
        assert isinstance(snapshot, RegisterSnapshot) and snapshot.value == "one"
        assert durability.fault is None  # no fault of the store: what at-least-once does
        assert (tmp_path / "one.sqlite.ahead").exists()
    finally:
        durability.close()


def started_status(config: AppConfig, records: list[MemoryRecord]) -> tuple[str | None, object]:
    """Start once on ``records`` (the sources at offset 10): the fault and /vehicle/7."""
    durability = Durability(config, "one", ListReader(records, {SOURCE: 10}), 1, lambda n: 0)
    committed = asyncio.run(durability.open([SOURCE])).committed
    try:
        stored = committed.load("/vehicle/7")
        assert stored is not None
        snapshot = decode_snapshot(stored["status"])
        assert isinstance(snapshot, RegisterSnapshot)
        return durability.fault, snapshot.value
    finally:
        durability.close()


def test_a_store_whose_shard_position_is_damaged_is_set_aside_and_rebuilt(
    tmp_path: Path,
) -> None:
    """A damaged ``sources`` column stopped every start with a bare JSONDecodeError
    (a traceback, exit 1), and the file was never set aside."""
    config = parse_config(document(store={"path": str(tmp_path)}), {})
    records = checkpoint(0, 0, 1, 10, {"/vehicle/7": "one"}, True)
    store = SQLiteStore(tmp_path / "one.sqlite").open()
    asyncio.run(recover(store, ListReader(records, {}), "traffic.changelog", 1, {SOURCE: 10}))
    store.close()
    with sqlite3.connect(tmp_path / "one.sqlite") as raw:
        raw.execute("""UPDATE shards SET sources = '{"readings/0": 10|'""")

    fault, status = started_status(config, records)
    assert fault is not None and "reading shard 0's position" in fault, fault
    assert "rebuilt from the changelog" in fault and status == "one"
    assert list(tmp_path.glob("one.sqlite.corrupt-*"))
    assert started_status(config, records) == (None, "one")  # the rebuilt store is healthy


@contextlib.contextmanager
def files_limited_to(size: int) -> Iterator[None]:
    """Writes that would grow a file past ``size`` bytes fail (EFBIG), as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, not the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_restore_that_cannot_write_runs_on_state_rebuilt_in_memory(tmp_path: Path) -> None:
    """A full disk met by the start's restore stopped this start and every later one,
    though memory is the documented fallback when no file can be written."""
    config = parse_config(document(store={"path": str(tmp_path)}), {})
    records = checkpoint(0, 0, 1, 10, {f"/vehicle/{i}": "x" * 300 for i in range(2000)}, True)
    durability = Durability(config, "one", ListReader(records, {SOURCE: 10}), 1, lambda n: 0)
    with files_limited_to(200_000):
        committed = asyncio.run(durability.open([SOURCE])).committed
    try:
        assert isinstance(committed, MemoryCommitted)
        assert durability.fault is not None and "writing the local store" in durability.fault
        assert "rebuilt from the changelog in memory" in durability.fault
        assert committed.load("/vehicle/1999") is not None
        assert (tmp_path / "one.sqlite").exists()  # not damaged: kept, for the next start
        assert not list(tmp_path.glob("one.sqlite.corrupt-*"))
    finally:
        durability.close()
    assert started_status(config, records) == (None, "x" * 300)  # with room again


def test_a_store_written_for_another_apps_changelog_stops_the_start(tmp_path: Path) -> None:
    """Two apps given one `mesh.instance_id` and one `store.path` (the default `./data`
    of one working directory) open one file. The second started from the first's
    positions in its own changelog: its records before them were never read (its state
    lost) and the first app's agents were served as its own."""
    theirs = checkpoint(0, 0, 1, 10, {f"/vehicle/{i}": "theirs" for i in range(5)}, True)
    reader = ListReader(theirs, {SOURCE: 10})
    traffic = parse_config(document(store={"path": str(tmp_path)}), {})
    durability = Durability(traffic, "one", reader, 1, lambda node: 0)
    asyncio.run(durability.open([SOURCE]))
    durability.close()

    ours = checkpoint(0, 0, 1, 10, {f"/vehicle/{i}": "ours" for i in range(10)}, True)
    other = parse_config(document(app="parking", store={"path": str(tmp_path)}), {})
    durability = Durability(other, "one", ListReader(ours, {SOURCE: 10}), 1, lambda node: 0)
    with pytest.raises(StoreError, match=r"traffic\.changelog"):
        asyncio.run(durability.open([SOURCE]))
    store = SQLiteStore(tmp_path / "one.sqlite").open()  # (left as it was, for its app)
    try:
        stored = store.load("/vehicle/0")
        assert stored is not None
        snapshot = decode_snapshot(stored["status"])
        assert isinstance(snapshot, RegisterSnapshot) and snapshot.value == "theirs"
    finally:
        store.close()


def test_a_store_another_process_holds_locked_stops_the_start_and_is_kept(
    tmp_path: Path,
) -> None:
    """A store locked past SQLite's 5 s wait (a sqlite3 shell left in a transaction, a
    backup tool) was taken as damaged: the healthy file was set aside as corrupt and
    rebuilt whole from the changelog."""
    records = checkpoint(0, 0, 1, 10, {f"/vehicle/{i}": "kept" for i in range(10)}, True)
    config = parse_config(document(store={"path": str(tmp_path)}), {})
    durability = Durability(config, "one", ListReader(records, {SOURCE: 10}), 1, lambda n: 0)
    asyncio.run(durability.open([SOURCE]))
    durability.close()
    holder = sqlite3.connect(tmp_path / "one.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        durability = Durability(config, "one", ListReader(records, {SOURCE: 10}), 1, lambda n: 0)
        with pytest.raises(StoreError, match=r"locked by another process"):
            asyncio.run(durability.open([SOURCE]))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(tmp_path.glob("one.sqlite.corrupt-*"))
    assert started_status(config, records) == (None, "kept")


class SilentOnce(ListReader):
    """A changelog whose broker does not answer the first request for the committed
    offsets (a broker frozen, as its client's timeout reports it), then does."""

    silent = True

    async def committed_offsets(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if self.silent:
            self.silent = False
            raise BrokerError("the broker did not answer in time", unreachable=True)
        return await super().committed_offsets(group, partitions)


def test_with_the_embedded_broker_a_restore_tried_again_keeps_the_earlier_run_s_store(
    tmp_path: Path,
) -> None:
    """The start tries the restore again after a broker that did not answer: the second
    try set aside the empty store the first had just made over ``.previous``, and the
    earlier run's store kept there (for ``swimstream inspect``) was deleted."""
    config = parse_config(document(broker={"kind": "embedded"}, store={"path": str(tmp_path)}), {})
    store = SQLiteStore(tmp_path / "one.sqlite").open()
    records = checkpoint(0, 0, 1, 10, {"/vehicle/7": "old"}, True)
    reader = ListReader(records, {TopicPartition("readings", 0): 10})
    asyncio.run(recover(store, reader, "traffic.changelog", 1, reader.committed))
    store.close()

    durability = Durability(config, "one", SilentOnce([], {}), 1, lambda node: 0)
    with pytest.raises(BrokerError):
        asyncio.run(durability.open([TopicPartition("readings", 0)]))
    asyncio.run(durability.open([TopicPartition("readings", 0)]))
    durability.close()
    kept = SQLiteStore(tmp_path / "one.sqlite.previous").open()
    try:
        assert kept.load("/vehicle/7") is not None
    finally:
        kept.close()
