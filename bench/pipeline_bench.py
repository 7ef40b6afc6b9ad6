"""The service's per-record path without a broker: how fast could it be at best?

Run: ``.venv/bin/python bench/pipeline_bench.py`` (``make bench`` runs every benchmark).
Options: ``--records N`` (default 200,000), ``--rounds N`` (default 5; the best round is
reported, as this is a shared machine), ``--no-write`` to leave BENCHMARKS.md alone (a run
with other ``--records`` or ``--rounds`` leaves it alone too).

Records are made in memory (the e2e bench's readings: 10,000 devices, 1% hot, as the
``confluent_kafka.Message`` objects the Kafka connector hands over) and go through the
same objects as in the service: the source loop
(:class:`~swimstream.streams.ingest.SourceRunner`, over a connector serving them from
memory in batches, :mod:`bench.memory_source`), which commits offsets and hands each
batch to :class:`~swimstream.streams.router.RecordRouter` (decoding, the route template,
the record's ack and offset tracking), the plane and its scheduler, the agents' lanes
and links, and the insight and lane sinks, whose connector here only keeps the records
and reports their delivery when polled. No broker, no client library's fetching and no
event-loop I/O: the figures are a ceiling for the service on this machine, and what the
e2e bench measures on top of them is the Kafka side.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Message

from bench.e2e_workload import readings as e2e_readings
from bench.memory_source import MemorySource
from bench.report import progress, table, write_section
from bench.towers_by_hand import TowersByHand
from swimstream import Agent, CommandLane
from swimstream.config.service import ProcessingConfig
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import Plane, tune_gc
from swimstream.streams.connector import InboundRecord, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.lane_sink import LaneSink
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from swimstream.testing import MemorySink

PARTITIONS = 4
SERVICE = ProcessingConfig()
"""The service's processing defaults, which the plane and the source loop here run with:
the plane passivates (an idle timeout and a budget of active agents), so every record
pays the recency bookkeeping the service's records pay."""

BATCH = SERVICE.max_poll_records
"""Records routed between yields to the agents, as the source loop's ``max_batch``."""

COMMIT_EVERY = SERVICE.commit_max_records
"""Records between offset commits, as the service's ``commit_max_records``. By count
only, not also every ``commit_interval`` (100 ms) as in the service: at the rates
measured here the count comes first, and under Valgrind's slowdown the interval would
make the instruction count depend on the machine's speed."""

RUN = 100
"""Consecutive records of one partition in a batch. librdkafka hands over a fetch
response's records of a partition together: 20,000 records of a topic of four partitions
on the embedded broker came out of ``consume`` in four runs of 5,000. Runs of 100 count
the router's per-run work more often than the service pays it, never less."""


class Ignore(Agent):
    """Takes each reading and does nothing: the framework's own cost per record."""

    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        pass


def memory_records(count: int) -> list[Message]:
    """The e2e bench's readings, as consumed records of its four partitions: messages
    as librdkafka makes them, whose accessors cost what they cost in the service, in
    runs of :data:`RUN` records of a partition as a fetch delivers them."""
    return [
        Message(
            topic="readings",
            partition=(n // RUN) % PARTITIONS,
            offset=n,
            key=key,
            value=value,
        )
        for n, (key, value, _) in enumerate(e2e_readings(count))
    ]


CASES: dict[str, tuple[str, str | None]] = {  # name -> (agents, summary coalescing)
    "framework only (a callback that does nothing)": ("ignore", None),
    "peers' work (swimstream-devices)": ("devices", None),
    "towers app, summaries coalesced every 100 ms": ("towers", "coalesce"),
    "towers app, a summary record per change": ("towers", "every"),
    "towers logic by hand (no framework: dicts, one loop)": ("by-hand", "every"),
}


def routes_for(agents: str) -> dict[str, type[Agent]]:
    if agents == "ignore":
        return {"/device/:id": Ignore}
    if agents == "devices":
        from bench.peers.swimstream_devices import Device

        return {"/device/:id": Device}
    from examples.towers.app import Device as TowerDevice
    from examples.towers.app import Tower, World

    return {"/device/:id": TowerDevice, "/tower/:id": Tower, "/world": World}


class CpuMeter:
    """What a round measures by default: the process's CPU time."""

    def start(self) -> None:
        self._started = time.process_time()

    def stop(self) -> float:
        return time.process_time() - self._started


async def one_round(
    agents: str,
    summaries: str | None,
    records: list[Message],
    *,
    warmup: int = 0,
    meter: CpuMeter | None = None,
) -> float:
    """CPU seconds to take ``records`` through the pipeline until every one is done.

    The records go through the service's source loop (:class:`SourceRunner`, batches of
    :data:`BATCH`, offsets committed every :data:`COMMIT_EVERY` records) over a
    connector that serves them from memory (:mod:`bench.memory_source`). With
    ``warmup``, the first that many records are taken through and settled before
    ``meter`` starts: every agent then exists and every link is open, so what is
    measured is the steady state.
    """
    meter = meter if meter is not None else CpuMeter()
    if agents == "by-hand":
        return by_hand_round(records, warmup, meter)
    registry = MetricsRegistry()
    failures = DeliveryFailures(registry)
    sink = MemorySink(keep=False)
    connector: Any = sink  # produces only
    publisher = InsightPublisher(
        {"alerts": SinkTarget("alerts", "json", connector)}, registry, failures
    )
    async with Plane(
        routes_for(agents),
        publisher=publisher,
        mailbox_capacity=SERVICE.mailbox_capacity,
        idle_timeout=SERVICE.idle_timeout,
        max_active=SERVICE.max_active_agents,
    ) as plane:
        lane_sink = None
        if summaries is not None:
            coalesce = 0.1 if summaries == "coalesce" else None
            target = SinkTarget("summaries", "json", connector)
            lane_sink = LaneSink(target, "id", registry, failures, coalesce)
            plane.observe(lane_sink, route="/tower/:id", lane="summary")
        flushed = time.monotonic()

        def between_batches() -> None:  # (the service's delivery and coalescing tasks)
            nonlocal flushed
            sink.poll()
            interval = lane_sink.coalesce if lane_sink is not None else None
            if interval is not None and time.monotonic() - flushed >= interval:
                assert lane_sink is not None
                lane_sink.flush()
                flushed = time.monotonic()

        template = RouteTemplate.parse("/device/{key}")
        route = SourceRoute("readings", template, "reading")
        router = RecordRouter(plane, [route], DeadLetters(connector, "dlq", registry), registry)
        partitions = {TopicPartition("readings", p) for p in range(PARTITIONS)}
        inbound = cast("list[InboundRecord]", records)  # (as the Kafka connector hands them)
        source = MemorySource(inbound, partitions, between_batches)
        runner = SourceRunner(
            "bench",
            source,
            router,
            registry,
            max_batch=BATCH,
            max_inflight=max(4 * SERVICE.mailbox_capacity, 10_000),  # (the service's)
            commit_interval=float("inf"),
            commit_every=COMMIT_EVERY,
        )
        running = asyncio.create_task(runner.run())
        try:
            if warmup:
                source.serve(warmup)
                await source.dry.wait()
                await plane.settle()
            meter.start()
            source.serve(len(records))
            await source.dry.wait()
            await plane.settle()
            if lane_sink is not None:
                lane_sink.flush()
            sink.poll()
            elapsed = meter.stop()
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        assert runner.book.inflight == 0, f"{runner.book.inflight} records unfinished"
    return elapsed


def by_hand_round(records: list[Message], warmup: int, meter: CpuMeter) -> float:
    """CPU seconds for the towers logic written by hand (:mod:`bench.towers_by_hand`)
    to take ``records``: the floor under the towers app's rows."""
    towers = TowersByHand()
    handle = towers.handle
    for record in records[:warmup]:
        handle(record.key() or b"", record.value() or b"")
    meter.start()
    for record in records[warmup:]:
        handle(record.key() or b"", record.value() or b"")
    return meter.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    tune_gc()
    records = memory_records(args.records)
    best: dict[str, float] = {}
    for round_number in range(1, args.rounds + 1):
        for name, (agents, summaries) in CASES.items():
            seconds = asyncio.run(one_round(agents, summaries, records))
            best[name] = min(best.get(name, seconds), seconds)
            rate = args.records / seconds
            progress(f"round {round_number}/{args.rounds}: {name}: {rate:,.0f} records/s")
    rows = [
        [name, f"{args.records / seconds:,.0f}", f"{seconds / args.records * 1e6:.1f}"]
        for name, seconds in best.items()
    ]
    body = (
        table(["pipeline, no broker", "records/s (best round)", "µs per record"], rows)
        + f"\n\n{args.records:,} readings (the e2e bench's: 10,000 devices, 1% of them hot)"
        " held in memory, taken by the service's source loop in batches of 500 and routed"
        " as the service routes them (JSON decoding, the route template, each record's"
        " ack and offset tracking, offset commits) into the plane, through the"
        " agents, their lanes and links, and out to sinks whose connector only counts"
        " records and reports their delivery; one thread, CPU time until every record"
        f" is done, the best of {args.rounds} rounds. No broker, no client library and no"
        " I/O: a ceiling for the service on this machine. The e2e bench's rows add the"
        " Kafka side (consuming, producing, delivery reports, commits) and share the"
        " two cores with the broker. The last row is the floor under the towers rows:"
        " the app's logic written by hand (`bench/towers_by_hand.py`: the same decoding,"
        " device state, incremental tower aggregates, world totals, alerts and summary"
        " records, checked against the app's by a test) with dicts and direct calls in"
        " one loop; the gap is what the framework costs."
    )
    print(body)
    if args.records == 200_000 and args.rounds == 5 and not args.no_write:
        write_section(
            "pipeline",
            "The per-record path without a broker",
            "make bench  (python bench/pipeline_bench.py)",
            body,
        )


if __name__ == "__main__":
    main()
