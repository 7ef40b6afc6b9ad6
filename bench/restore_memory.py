"""Restore the same changelog tail again and again: what resident memory keeps of each.

What a hand-over's restore does, without the load around it: an embedded Kafka holds a
changelog whose partitions 0 and 1 hold ``--records`` records each (small ones, as the
towers app writes: a device's reading count, status or tower), in checkpoints of 4,000
with their markers; one SQLite store is emptied before each round, and each round reads
the two partitions with :class:`~connectors.kafka.changelog.KafkaChangelogReader` and
applies them with :func:`~swimstream.store.recovery.recover`, as
:class:`~swimstream.service.handover.Handover` does for shards gained. After each round
it prints resident memory (and its peak during the round), what glibc's malloc holds
(in use, free, per arena) and the arenas of Python's own small-object allocator.

``--settings '{"queued.min.messages": 100000}'`` gives the reader librdkafka settings
(that one puts back librdkafka's default prefetch); ``--release`` gives freed memory
back after each round, as a hand-over does
(:func:`~swimstream.service.memory.release_freed_memory`); ``--spill N`` holds at most
N records of the tail in memory, the rest on disk (the default spills past 2,000,000:
see :mod:`swimstream.store.held_tail`).

Run: ``PYTHONPATH=. .venv/bin/python bench/restore_memory.py --rounds 7``. Linux with
glibc (mallinfo2, glibc 2.33 or later). Not run by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from confluent_kafka import Producer

from connectors.embedded.kafka import EmbeddedKafka
from connectors.kafka.changelog import KafkaChangelogReader
from swimstream.service.memory import release_freed_memory
from swimstream.store.changelog import Marker, entry_key, headers, marker_key, marker_value
from swimstream.store.recovery import recover
from swimstream.store.sqlite import SQLiteStore

TOPIC = "bench.changelog"
PER_CHECKPOINT = 4000


_MALLINFO2 = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2.split(" ")]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    return libc


def malloc_totals() -> tuple[float, float]:
    """glibc's malloc: MB in use and MB free (kept), over every arena."""
    info = _libc().mallinfo2()
    return info.uordblks / 2**20, info.fordblks / 2**20


def malloc_state() -> str:
    """glibc's malloc: in use, free, and the size of each arena (MB)."""
    libc = _libc()
    with tempfile.NamedTemporaryFile("r", suffix=".xml") as out:
        stream = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        xml = out.read()
    arenas = [
        int(size) >> 20
        for size in re.findall(r'<system type="current" size="(\d+)"/>\s*<system type="max"', xml)
    ]
    in_use, free = malloc_totals()
    return (
        f"malloc in use {in_use:.0f} MB, free {free:.0f} MB,"
        f" arenas (MB) {arenas[:-1]}"  # (the last figure is the total)
    )


def _debugmallocstats() -> bytes:
    """What ``sys._debugmallocstats`` writes to the standard error, captured."""
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(write)
        os.close(saved)
    text = b""
    while chunk := os.read(read, 65536):
        text += chunk
    os.close(read)
    return text


def python_arenas() -> int:
    """Arenas (1 MiB each) Python's small-object allocator holds."""
    return python_allocator()[0]


def python_allocator() -> tuple[int, float]:
    """Python's small-object allocator: arenas held (1 MiB each), and MB in live blocks
    in them (the rest of the arenas is free, kept while one block of its arena lives)."""
    text = _debugmallocstats()
    arenas = re.search(rb"# arenas allocated current\s*=\s*([\d,]+)", text)
    blocks = re.search(rb"# bytes in allocated blocks\s*=\s*([\d,]+)", text)

    def number(found: re.Match[bytes] | None) -> int:
        return int(found.group(1).replace(b",", b"")) if found else -1

    return number(arenas), number(blocks) / 2**20


def fill(kafka: EmbeddedKafka, records: int) -> None:
    kafka.create_topic(TOPIC, 4)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 50})
    for checkpoint, start in enumerate(range(0, records, PER_CHECKPOINT), start=1):
        marker = Marker(checkpoint, {}, 0, 1, "other")
        listed: list[tuple[str, str | bytes | None]] = [
            *headers(checkpoint, {"readings/0": checkpoint * 100}, marker)
        ]
        for partition in (0, 1):
            for n in range(start, start + PER_CHECKPOINT):
                device = (n * 7 + partition) % 5000
                name = ("readings", "status", 'devices:"x"')[n % 3]
                value = b'{"temp": %d.5, "tower": "t%d", "ts": %d}' % (n % 100, device % 50, n)
                key = entry_key(f"/device/{device}", name)
                while True:
                    try:
                        producer.produce(TOPIC, value, key, partition=partition, headers=listed)
                        break
                    except BufferError:
                        producer.poll(0.1)
            producer.produce(TOPIC, marker_value(marker), marker_key("other"), partition=partition)
        producer.poll(0)
    producer.flush(60)


class Peak:
    """Resident memory's peak, sampled after each batch the reader hands over."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.rss = 0

    def sample(self) -> bool:
        self.rss = max(self.rss, self.process.memory_info().rss)
        return False  # (recover's ``stopping``: never)


async def rounds(args: argparse.Namespace, kafka: EmbeddedKafka, work: Path) -> None:
    reader = KafkaChangelogReader(kafka.bootstrap, json.loads(args.settings))
    store = SQLiteStore(work / "bench.sqlite").open()
    process = psutil.Process()
    try:
        for number in range(args.rounds):
            with sqlite3.connect(store.path, isolation_level=None) as emptying:
                emptying.execute("DELETE FROM state")
                emptying.execute("DELETE FROM shards")
            peak = Peak(process)
            started = time.monotonic()
            report = await recover(
                store, reader, TOPIC, 4, {}, peak.sample, shards={0, 1}, spill_after=args.spill
            )
            took = time.monotonic() - started
            if args.release:
                await release_freed_memory()
            print(
                f"round {number}: {report.records:,} records in {took:.1f} s;"
                f" resident {process.memory_info().rss / 2**20:.0f} MB"
                f" (peak {peak.rss / 2**20:.0f}); {malloc_state()};"
                f" Python arenas {python_arenas()}",
                flush=True,
            )
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--records", type=int, default=200_000, help="per partition")
    parser.add_argument("--settings", default="{}", help="the reader's librdkafka settings")
    parser.add_argument("--release", action="store_true", help="release freed memory")
    parser.add_argument(
        "--spill", type=int, default=None, help="records held in memory before they go to disk"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swimstream-restore-"))
    kafka = EmbeddedKafka(work_dir=work / "tansu").start()
    try:
        fill(kafka, args.records)
        asyncio.run(rounds(args, kafka, work))
    finally:
        kafka.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
