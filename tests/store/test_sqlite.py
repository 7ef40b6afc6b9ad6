"""The local SQLite store: round trips, damage detection, and inspection."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream.crdt import LWWMap, LWWRegister, PNCounter, encode
from swimstream.errors import StoreError
from swimstream.runtime.agent_record import TIMERS, TimerSpec, dump_timers
from swimstream.store.changelog import ChangelogEntry
from swimstream.store.entries import encode_entry, encode_header, entry_name
from swimstream.store.inspect import describe
from swimstream.store.sqlite import ShardPosition, SQLiteStore

REPO = Path(__file__).resolve().parents[2]


def sample_entries() -> list[ChangelogEntry]:
    status = LWWRegister("r")
    status.set({"temp": 71.5})
    history = LWWMap("r")
    history.put(3, 70.0)
    history.put(4, 71.5)
    count = PNCounter("r")
    count.add(2)
    timers = dump_timers([TimerSpec(1, "ring", ("x",), 1_700_000_100.0, None)])
    assert timers is not None
    return [
        ChangelogEntry("/device/1", "status", encode(status.snapshot()), 1),
        ChangelogEntry("/device/1", "history", encode(history.snapshot()), 1),
        ChangelogEntry("/device/1", "readings", encode(count.snapshot()), 1),
        ChangelogEntry("/device/1", TIMERS, timers, 1),
        ChangelogEntry("/device/2", "status", encode(status.snapshot()), 0),
    ]


def written_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path).open()
    positions = {1: ShardPosition(42, 7, {"readings": 100})}
    asyncio.run(store.write_async(sample_entries(), positions))
    return store


def test_a_checkpoint_round_trips_and_reports_its_positions(tmp_path: Path) -> None:
    store = written_store(tmp_path / "s.sqlite")
    stored = store.load("/device/1")
    assert stored is not None and set(stored) == {"status", "history", "readings"}
    assert [node for node, _ in store.named(TIMERS)] == ["/device/1"]
    assert store.positions() == {1: ShardPosition(42, 7, {"readings": 100})}
    assert store.count() == 2
    asyncio.run(store.write_async([ChangelogEntry("/device/2", "status", None, 0)], {}))
    assert store.load("/device/2") is None
    store.close()
    reopened = SQLiteStore(tmp_path / "s.sqlite").open()
    assert reopened.load("/device/1") == stored
    reopened.close()


def test_several_checkpoints_in_one_write_apply_in_their_order(tmp_path: Path) -> None:
    """Recovery writes a whole changelog tail at once: an entry removed and then put back
    (a device that left its tower's join and came back) must end up present, and one put
    and then removed must end up absent, however the write batches its statements."""
    store = SQLiteStore(tmp_path / "s.sqlite").open()
    old, new = (encode(_register(text).snapshot()) for text in ("old", "new"))
    asyncio.run(
        store.write_async(
            [
                ChangelogEntry("/tower/1", 'devices:"/device/7"', old, 0),
                ChangelogEntry("/tower/1", 'devices:"/device/8"', old, 0),
                ChangelogEntry("/tower/1", 'devices:"/device/7"', None, 0),  # left
                ChangelogEntry("/tower/1", 'devices:"/device/8"', None, 0),
                ChangelogEntry("/tower/1", 'devices:"/device/7"', new, 0),  # came back
            ],
            {},
        )
    )
    assert store.load("/tower/1") == {'devices:"/device/7"': new}
    store.close()


def _register(value: str) -> LWWRegister:
    register = LWWRegister("r")
    register.set(value)
    return register


def test_writes_larger_than_a_statement_keep_every_row(tmp_path: Path) -> None:
    from swimstream.store.sqlite import CHUNK_ROWS

    store = SQLiteStore(tmp_path / "s.sqlite").open()
    agents = CHUNK_ROWS * 2 + 7
    puts = [
        ChangelogEntry(f"/d/{n}", name, b"%d" % n, n % 4)
        for n in range(agents)
        for name in ("a", "b")
    ]
    store.write(puts, {0: ShardPosition(10, 1, {})})
    gone = [ChangelogEntry(f"/d/{n}", "b", None, n % 4) for n in range(0, agents, 2)]
    store.write(gone, {0: ShardPosition(20, 2, {})})
    assert store.count() == agents
    for n in (0, 1, CHUNK_ROWS, CHUNK_ROWS + 1, agents - 1):
        expected = {"a": b"%d" % n} if n % 2 == 0 else {"a": b"%d" % n, "b": b"%d" % n}
        assert store.load(f"/d/{n}") == expected
    store.close()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=40))
def test_values_are_stored_as_the_blobs_they_were(values: list[bytes]) -> None:
    """The writer binds values as bytearrays (see ``_apply_in_order``): every row must
    hold a blob of the value's very bytes, with their CRC, as a write of the bytes did."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "s.sqlite").open()
        store.write([ChangelogEntry("/d/1", f"n{i}", v, 0) for i, v in enumerate(values)], {})
        assert store.load("/d/1") == {f"n{i}": v for i, v in enumerate(values)}
        store.close()
        with sqlite3.connect(Path(tmp) / "s.sqlite") as raw:
            rows = raw.execute("SELECT name, typeof(value), value, crc FROM state").fetchall()
        raw.close()
    assert sorted(rows) == sorted((f"n{i}", "blob", v, zlib.crc32(v)) for i, v in enumerate(values))


def test_removing_a_name_looks_it_up_rather_than_scanning_the_store(tmp_path: Path) -> None:
    """A bounded map lane drops its oldest entries as new ones come, so a write holds
    removals between upserts, agent by agent. Each run of removals was one ``(node,
    name) IN (VALUES ...)`` statement, which SQLite answers (from two rows on) by scanning
    the whole table: with 100,000 names stored, writing one second of a stream of 1,500
    readings a second took 8 to 13 s, and a SIGTERM waited for it far beyond the drain
    timeout. Counted in SQLite's virtual machine steps, which do not depend on the machine."""
    store = SQLiteStore(tmp_path / "s.sqlite").open()
    rows = [
        ChangelogEntry(f"/device/{i}", f"history:{k}", b"x", 0)
        for i in range(2000)
        for k in range(10)
    ]
    asyncio.run(store.write_async(rows, {}))
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    writer = store._writer  # the test counts the writer's own work
    assert writer is not None
    writer.set_progress_handler(count, 1000)
    changes = []
    for i in range(100):  # readings of each device: entries in, the oldest out
        changes.append(ChangelogEntry(f"/device/{i}", "history:10", b"y", 0))
        changes.append(ChangelogEntry(f"/device/{i}", "history:0", None, 0))
        changes.append(ChangelogEntry(f"/device/{i}", "history:1", None, 0))
    asyncio.run(store.write_async(changes, {}))
    writer.set_progress_handler(None, 0)
    stored = store.load("/device/7")
    assert stored is not None and set(stored) == {f"history:{k}" for k in range(2, 11)}
    assert 0 < steps[0] * 1000 < 200_000, f"{steps[0] * 1000:,} steps for 300 changes"
    store.close()


def test_the_known_count_comes_from_the_store_thread_not_a_scan_per_question(
    tmp_path: Path,
) -> None:
    first = SQLiteStore(tmp_path / "s.sqlite").open()
    first.write([ChangelogEntry(f"/d/{n}", "a", b"1", 0) for n in range(3)], {})
    first.close()
    store = SQLiteStore(tmp_path / "s.sqlite").open()
    asyncio.run(store.write_async([], {}))  # queued behind the count made at open
    assert store.known_count() == store.count() == 3
    store.write([ChangelogEntry("/d/new", "a", b"1", 0)], {})
    assert store.count() == 4
    assert store.known_count() == 3  # counted again only after RECOUNT_AFTER seconds
    store.close()


def test_closing_while_the_store_thread_counts_is_safe(tmp_path: Path) -> None:
    """Close right after open, while the background count still scans the table: the
    connection it uses must not be closed under it (that crashed the interpreter)."""
    first = SQLiteStore(tmp_path / "s.sqlite").open()
    first.write([ChangelogEntry(f"/d/{n}", "a", b"1", 0) for n in range(100_000)], {})
    first.close()
    for _ in range(5):
        SQLiteStore(tmp_path / "s.sqlite").open().close()
    again = SQLiteStore(tmp_path / "s.sqlite").open()
    assert again.count() == 100_000
    again.close()


def test_a_damaged_value_is_refused_and_the_store_marked(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    written_store(path).close()
    import sqlite3

    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE state SET value = x'00ff' WHERE node = '/device/1' AND name = 'status'")
    store = SQLiteStore(path).open()
    with pytest.raises(StoreError, match="checksum mismatch"):
        store.load("/device/1")
    store.close()
    with pytest.raises(StoreError, match="damaged in an earlier run"):
        SQLiteStore(path).open()


@pytest.mark.parametrize(
    "damage",
    [
        "sources = '{\"readings\": 100|'",  # one flipped bit: no longer JSON
        "sources = '[100]'",  # JSON, but not a cut
        "changelog_offset = 43",  # still a plausible offset: would skip a record
        "checkpoint = 6",
    ],
)
def test_a_damaged_shard_position_is_refused_at_open_and_the_store_marked(
    tmp_path: Path, damage: str
) -> None:
    """Positions had no CRC: a bad ``sources`` stopped every start with a bare
    JSONDecodeError (never marked, so never set aside), and a flipped offset silently
    skipped changelog records."""
    path = tmp_path / "s.sqlite"
    written_store(path).close()
    import sqlite3

    with sqlite3.connect(path) as raw:
        raw.execute(f"UPDATE shards SET {damage} WHERE shard = 1")
    with pytest.raises(StoreError, match="is damaged \\(reading shard 1's position"):
        SQLiteStore(path).open()
    with pytest.raises(StoreError, match="damaged in an earlier run"):
        SQLiteStore(path).open()


def test_a_store_of_another_schema_is_refused(tmp_path: Path) -> None:
    """Schema 1 kept positions without a CRC: such a file is set aside and rebuilt."""
    path = tmp_path / "s.sqlite"
    written_store(path).close()
    import sqlite3

    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    with pytest.raises(StoreError, match="has schema 1, this build reads 2"):
        SQLiteStore(path).open()


def inspect(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``swimstream inspect --store`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "swimstream", "inspect", "--store", store, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_inspect_of_a_store_with_one_agent_says_one_agent(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite").open()
    asyncio.run(store.write_async(sample_entries()[:1], {}))
    store.close()
    assert next(describe(tmp_path / "s.sqlite")) == f"{tmp_path / 's.sqlite'}: 1 agent"


def damaged_store(path: Path) -> Path:
    """A store of 2,000 agents whose second half is garbage (its first pages are fine)."""
    store = SQLiteStore(path).open()
    rows = [ChangelogEntry(f"/device/{i}", "status", b"x" * 400, 0) for i in range(2000)]
    asyncio.run(store.write_async(rows, {0: ShardPosition(1, 1, {})}))
    store.close()
    damage_the_second_half(path)
    return path


def damage_the_second_half(path: Path) -> None:
    """Overwrite the file's second half: opening reads only its first pages."""
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(size // 2)
        file.write(random.Random(1).randbytes(size - size // 2))


def test_a_write_that_finds_the_file_damaged_marks_the_store(tmp_path: Path) -> None:
    """Damage past the pages an open reads (a crash, a bad disk) is found by a write:
    unmarked, the next start opened the file again and stopped at the same write, at
    every start."""
    path = damaged_store(tmp_path / "s.sqlite")
    store = SQLiteStore(path).open()
    with pytest.raises(StoreError, match="is damaged"):
        rewrites = [ChangelogEntry(f"/device/{i}", "status", b"y", 0) for i in range(2000)]
        asyncio.run(store.write_async(rewrites, {}))
    store.close()
    with pytest.raises(StoreError, match="damaged in an earlier run"):
        SQLiteStore(path).open()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not SQLite at all" * 100)
    with pytest.raises(StoreError, match="cannot be used"):
        SQLiteStore(path).open()


def test_inspect_shows_shards_agents_and_decoded_lanes(tmp_path: Path) -> None:
    store = written_store(tmp_path / "s.sqlite")
    # A map lane as checkpoints store it: a row per entry, the lane's own row its header.
    history = LWWMap("r")
    history.put(5, 60.0)
    history.put(6, 61.5)
    as_checkpoints_write = [
        ChangelogEntry("/device/3", "history", encode_header(history), 1),
        *(
            ChangelogEntry("/device/3", entry_name("history", key), encode_entry(history, key), 1)
            for key in (5, 6)
        ),
    ]
    asyncio.run(store.write_async(as_checkpoints_write, {}))
    store.close()
    result = inspect(str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "3 agents" in result.stdout
    assert '/device/3  history={"5": 60.0, "6": 61.5}' in result.stdout
    assert "shard 1: changelog offset 42, checkpoint 7" in result.stdout
    assert 'status={"temp": 71.5}' in result.stdout
    assert 'history={"3": 70.0, "4": 71.5}' in result.stdout and "readings=2" in result.stdout
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "swimstream",
            "inspect",
            "--store",
            str(tmp_path),
            "--node",
            "/device/1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '/device/1#@timers = [{"id": 1, "method": "ring"' in one.stdout
    missing = inspect(str(tmp_path / "nope"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_inspect_marks_damaged_and_unreadable_values_and_lists_the_rest(tmp_path: Path) -> None:
    """Inspect checked no CRC (a flipped bit printed as a plausible wrong value), stopped
    at the first value it could not decode without naming it, and showed map keys 1
    and "1" as one entry."""
    both = LWWMap("r")
    both.put(1, "int one")
    both.put("1", "str one")
    rows = [
        *(
            ChangelogEntry(f"/a/{n}", "status", encode(_register(f"v{n}").snapshot()), 0)
            for n in (1, 2, 3, 4)
        ),
        ChangelogEntry("/m/1", "m", encode_header(both), 0),
        *(ChangelogEntry("/m/1", entry_name("m", k), encode_entry(both, k), 0) for k in (1, "1")),
    ]
    store = SQLiteStore(tmp_path / "s.sqlite").open()
    asyncio.run(store.write_async(rows, {0: ShardPosition(7, 1, {"readings/0": 10})}))
    store.close()
    import sqlite3
    import zlib

    with sqlite3.connect(tmp_path / "s.sqlite") as raw:
        row = raw.execute("SELECT value FROM state WHERE node = '/a/2'").fetchone()
        flipped = bytearray(row[0])
        flipped[-1] ^= 0x01  # "v2" reads "v3", its CRC left as it was
        raw.execute("UPDATE state SET value = ? WHERE node = '/a/2'", (bytes(flipped),))
        garbage = b"\x00\xff"  # its CRC right: stored so, not damaged since
        raw.execute(
            "UPDATE state SET value = ?, crc = ? WHERE node = '/a/3'",
            (garbage, zlib.crc32(garbage)),
        )
    result = inspect(str(tmp_path))
    assert result.returncode == 1
    assert '/a/1  status="v1"' in result.stdout
    assert "/a/2  status=<damaged: checksum mismatch>" in result.stdout, result.stdout
    assert "/a/3  status=<unreadable: " in result.stdout, result.stdout
    assert '/a/4  status="v4"' in result.stdout
    assert '/m/1  m={"1": "int one", "\\"1\\"": "str one"}' in result.stdout, result.stdout
    assert "of the values listed above, 2 damaged or unreadable" in result.stderr, result.stderr
    one = inspect(str(tmp_path), "--node", "/a/2")
    assert one.returncode == 1 and "/a/2#status = <damaged: checksum mismatch>" in one.stdout


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_inspect_refuses_a_limit_below_one(tmp_path: Path, limit: str) -> None:
    """(-1 listed every agent, as SQLite's LIMIT -1 does, and 0 none.)"""
    written_store(tmp_path / "s.sqlite").close()
    result = inspect(str(tmp_path), "--limit", limit)
    assert result.returncode == 2, result.stdout
    assert f"argument --limit: {limit} is not above zero" in result.stderr, result.stderr
    assert result.stdout == ""
    listed = inspect(str(tmp_path), "--limit", "1")
    assert listed.returncode == 0 and "... 1 more" in listed.stdout, listed.stdout


def test_inspect_names_a_damaged_store_instead_of_a_traceback(tmp_path: Path) -> None:
    """A store set aside as corrupt opens (its first pages are fine) and failed at the
    first scan with a Python traceback."""
    path = damaged_store(tmp_path / "s.sqlite")
    result = inspect(str(path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"swimstream: {path} is damaged:"), result.stderr
