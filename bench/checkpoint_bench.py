"""The durable path's CPU per checkpoint, in process: collect, produce, SQLite write.

Run: ``.venv/bin/python bench/checkpoint_bench.py [--records N] [--every N]
[--per-write N] [--instructions]``. Prints CPU seconds per phase; writes nothing to
BENCHMARKS.md. ``--instructions`` counts each phase's machine instructions instead, under
Valgrind's callgrind (one run per phase, hash seeds fixed, as
:mod:`bench.instructions_bench` does): the same code gives the same count, where the
timings on this shared machine move by a fifth (``--records 30000`` takes a minute or so
a phase).

The e2e bench's durable row runs the whole service against a broker on two shared cores,
where a change worth a tenth of the durable path's CPU hides in the run-to-run spread.
Here the pipeline bench's readings go through the towers app (router, plane, agents)
with a :class:`~swimstream.store.tracker.StateTracker` attached, as in the service; every
``--every`` readings the plane settles and a checkpoint's three steps run in this one
thread, each timed by thread CPU time: the tracker's collect, producing every entry (key
and headers as the checkpointer spells them) to a librdkafka producer that reaches no
broker (its queue purged after each checkpoint), and, every ``--per-write``
checkpoints, one local SQLite write of them all, as the local writer batches them.
Transactions, markers, delivery reports and ``KafkaSink.produce_many``'s own generator
and loop (about 900 instructions an entry more in the service) are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Producer

from bench.instructions_bench import CallgrindMeter, under_callgrind
from bench.pipeline_bench import BATCH, PARTITIONS, memory_records, routes_for
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import Plane, tune_gc
from swimstream.store.changelog import ChangelogRow, Marker, headers
from swimstream.store.durable import DurableAgentStore
from swimstream.store.sqlite import ShardPosition, SQLiteStore
from swimstream.store.tracker import StateTracker
from swimstream.streams.connector import InboundRecord
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from swimstream.streams.tracking import OffsetBook
from swimstream.testing import MemorySink

NO_BROKER: dict[str, Any] = {
    "bootstrap.servers": "127.0.0.1:1",
    "queue.buffering.max.messages": 10_000_000,
    "queue.buffering.max.kbytes": 4_000_000,
    "message.timeout.ms": 0,
    "linger.ms": 100,
    "log_level": 0,
}


PHASES = ("collect", "produce", "sqlite")
"""The phases ``--instructions`` counts, one callgrind run each."""


def _switch(counted: str | None) -> Callable[[str, bool], None]:
    """``switch(phase, on)``: callgrind's counting on or off at the edges of ``counted``."""
    meter = CallgrindMeter()

    def switch(phase: str, on: bool) -> None:
        if phase != counted:
            return
        if on:
            meter.start()
        else:
            meter.stop()

    return switch


async def one_run(
    records: int, every: int, per_write: int, store_dir: Path, counted: str | None = None
) -> dict[str, float]:
    """CPU seconds per phase for ``records`` readings; also ``entries`` (a count).
    ``counted``: the phase callgrind counts (the process runs under it)."""
    switch = _switch(counted)
    readings = memory_records(records)
    committed = SQLiteStore(store_dir / "store.db").open()
    store = DurableAgentStore(committed)
    registry = MetricsRegistry()
    sink = MemorySink(keep=False)
    connector: Any = sink
    publisher = InsightPublisher(
        {"alerts": SinkTarget("alerts", "json", connector)}, registry, DeliveryFailures(registry)
    )
    producer = Producer(NO_BROKER)
    produce = producer.produce
    tracker = StateTracker(store, lambda node: hash(node) % PARTITIONS, 1_000_000)
    spent = {"route and agents": 0.0, "collect": 0.0, "produce": 0.0, "sqlite": 0.0}
    entries_seen = 0
    clock = time.thread_time
    pending: list[ChangelogRow] = []
    checkpoints = 0
    # The headers the checkpointer sends (its cut of every source partition, and its
    # marker's lineage): about 700 instructions a record more than two short ones.
    cut = {f"readings/{p}": 125_000 for p in range(PARTITIONS)}
    record_headers: Any = headers(1, cut, Marker(1, cut, 0, 1, "bench-instance"))
    try:
        async with Plane(routes_for("towers"), publisher=publisher, store=store) as plane:
            tracker.attach(plane)
            route = SourceRoute("readings", RouteTemplate.parse("/device/{key}"), "reading")
            router = RecordRouter(plane, [route], DeadLetters(connector, "dlq", registry), registry)
            book = OffsetBook()
            for first in range(0, len(readings), BATCH):
                started = clock()
                batch = cast("list[InboundRecord]", readings[first : first + BATCH])
                routed = 0
                while routed < len(batch):  # (the source loop's path; a full mailbox waits not)
                    routed, _, _ = router.route_batch(batch, routed, book)
                await asyncio.sleep(0)
                sink.poll()
                if (first + BATCH) % every:
                    spent["route and agents"] += clock() - started
                    continue
                await plane.settle()
                collecting = clock()
                spent["route and agents"] += collecting - started
                switch("collect", True)
                entries = tracker.collect()
                switch("collect", False)
                producing = clock()
                spent["collect"] += producing - collecting
                switch("produce", True)
                for node, name, value, shard in entries:
                    key = f"{node}#{name}".encode()
                    produce("changelog", value, key, shard, None, None, 0, record_headers)
                switch("produce", False)
                spent["produce"] += clock() - producing
                producer.purge(in_queue=True, in_flight=True)
                entries_seen += len(entries)
                pending += entries
                checkpoints += 1
                if checkpoints % per_write == 0:
                    writing = clock()
                    cut = {"readings/0": checkpoints}
                    positions = {p: ShardPosition(checkpoints, checkpoints, cut) for p in range(4)}
                    switch("sqlite", True)
                    committed.write(pending, positions)
                    switch("sqlite", False)
                    spent["sqlite"] += clock() - writing
                    pending = []
            await plane.settle()
    finally:
        committed.close()
    spent["entries"] = entries_seen
    return spent


def instructions(phase: str, args: argparse.Namespace) -> tuple[int, int]:
    """(instructions, entries) of ``phase``, counted in a child run under callgrind."""
    arguments = [
        *("--records", str(args.records), "--every", str(args.every)),
        *("--per-write", str(args.per_write), "--count", phase),
    ]
    counted, output = under_callgrind(__file__, arguments, phase)
    return counted, int(output.split(" readings, ")[1].split()[0].replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=3_000, help="readings per checkpoint")
    parser.add_argument("--per-write", type=int, default=10, help="checkpoints per SQLite write")
    parser.add_argument("--instructions", action="store_true", help="count, under callgrind")
    parser.add_argument("--count", choices=PHASES, help=argparse.SUPPRESS)  # (the child)
    args = parser.parse_args()
    if args.every % BATCH:
        parser.error(f"--every must be a multiple of {BATCH}")
    if args.instructions:
        for phase in PHASES:
            total, entries = instructions(phase, args)
            each = total / max(entries, 1)
            print(f"  {phase:<8} {total:15,} instructions  {each:7,.0f} an entry ({entries:,})")
        return
    tune_gc()
    with tempfile.TemporaryDirectory(prefix="checkpoint-bench-") as tmp:
        spent = asyncio.run(
            one_run(args.records, args.every, args.per_write, Path(tmp), args.count)
        )
    entries = int(spent.pop("entries"))
    print(f"{args.records:,} readings, {entries:,} changelog entries")
    for phase, seconds in spent.items():
        each = seconds / max(entries, 1) * 1e6
        print(f"  {phase:<17} {seconds:6.2f} CPU s  {each:5.2f} µs an entry")


if __name__ == "__main__":
    main()
