"""Scale-out: the e2e bench's devices row on one instance and on two, in one group.

Run: ``.venv/bin/python bench/scaleout_bench.py`` (``make bench`` runs it). Options:
``--records N`` (default 500,000), ``--rounds N`` (default 2: each round runs one
instance, then two), ``--durable`` for the service's defaults (durable state,
exactly-once) instead of state in memory, ``--no-write`` to leave BENCHMARKS.md alone.

The e2e bench measures one instance, where the service's main thread is the limit (its
other threads and the broker leave the second core mostly idle). An app whose agents
only use what their own partitions feed them (the peers' work: a count, the latest
reading and an alert per device) runs as several instances of one consumer group, each
with its share of the partitions, as a Kafka Streams or Faust app scales. Both instances
start together, so they join the group's first generation (two partitions each) and no
rebalance falls inside the measurement. Events/s counts from the first record either
instance takes to the last one, read from both instances' ``/metrics``, on the same
embedded broker and input as the e2e bench. The towers app is not measured here: its
towers gather devices from every partition, which needs the instance mesh.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e_bench import swimstream_contender
from bench.e2e_workload import PARTITIONS, produce_workload
from bench.peers.harness import Workload, metric_total
from bench.report import progress, table, write_section
from connectors.embedded import EmbeddedKafka, free_ports

ROW = "swimstream-devices"
TIMEOUT = 600.0


def run_instances(
    kafka: EmbeddedKafka, workload: Workload, count: int, work: Path, durable: bool = False
) -> list[str]:
    """Start ``count`` instances of one app together; the table row of their run."""
    contender = swimstream_contender(ROW, kafka, workload, work)
    config = json.loads(Path(contender.argv[contender.argv.index("--config") + 1]).read_text())
    if durable:  # the service's defaults
        config["store"] = {**config["store"], "durable": True}
        config["processing"] = "exactly-once"
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for index in range(count):
            web, mesh = free_ports(2)
            mine = {
                **config,
                "web": {"listen": f"127.0.0.1:{web}"},
                "mesh": {"listen": f"127.0.0.1:{mesh}", "instance_id": f"scaleout-{index}"},
                "store": {**config["store"], "path": str(work / f"store-{index}")},
            }
            path = work / f"instance-{index}.yaml"
            path.write_text(json.dumps(mine))
            argv = [*contender.argv[: contender.argv.index("--config")], "--config", str(path)]
            argv += ["--log-level", "warning", "--log-format", "text"]
            with (work / f"instance-{index}.log").open("ab") as log:
                processes.append(
                    subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
                )
            urls.append(f"http://127.0.0.1:{web}/metrics")
        first, done, shares = _watch(urls, processes, workload.records)
        cpu = [_cpu_seconds(process) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(30)
    rate = workload.records / (done - first)
    split = " / ".join(f"{share:,}" for share in shares)
    return [f"{count}", f"{rate:,.0f}", " + ".join(f"{c:.1f}" for c in cpu), split]


def _watch(
    urls: Sequence[str], processes: Sequence[subprocess.Popen[bytes]], total: int
) -> tuple[float, float, list[int]]:
    """(first record, last record, records per instance), from the instances' /metrics."""
    shares = [0] * len(urls)
    first = 0.0
    deadline = time.monotonic() + TIMEOUT
    next_progress = time.monotonic() + 5
    while time.monotonic() < deadline:
        for index, url in enumerate(urls):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    text = response.read().decode()
            except (urllib.error.URLError, OSError):
                continue
            shares[index] = int(metric_total(text, "swimstream_records_in_total") or 0)
        now = time.time()
        if sum(shares) and not first:
            first = now
        if sum(shares) >= total:
            return first, now, shares
        for process in processes:
            if process.poll() is not None:
                raise SystemExit(f"an instance exited with status {process.returncode}")
        if time.monotonic() > next_progress:
            next_progress += 5
            progress(f"{len(urls)} instance(s): {sum(shares):,} / {total:,} records")
        time.sleep(0.05)
    raise SystemExit(f"timed out after {TIMEOUT:.0f} s at {sum(shares):,} records")


def _cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    times = psutil.Process(process.pid).cpu_times()
    return times.user + times.system


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--durable", action="store_true", help="durable state and exactly-once (the defaults)"
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="scaleout-bench-") as tmp, EmbeddedKafka() as kafka:
        progress(f"broker {kafka.title} on {kafka.bootstrap}")
        workload = produce_workload(kafka, args.records)
        for round_number in range(1, args.rounds + 1):
            for count in (1, 2):
                work = Path(tmp) / f"round-{round_number}-x{count}"
                work.mkdir(parents=True)
                row = run_instances(kafka, workload, count, work, args.durable)
                progress(f"round {round_number}: {count} instance(s): {row[1]} events/s")
                rows.append([str(round_number), *row])
    state = (
        "durable state (changelog and SQLite per instance), exactly-once: the service's defaults"
        if args.durable
        else "state in memory, at-least-once"
    )
    note = (
        f"{args.records:,} readings of the e2e bench ({PARTITIONS} partitions, 10,000 devices,"
        " 1% hot) through its swimstream-devices app (the peers' work: a count, the latest"
        f" reading and an alert per device; {state}), one instance,"
        " then two in one consumer group started together, on one embedded Tansu. Events/s"
        " run from the first record either instance took to the last. The peers were not"
        " run scaled out; each can be (faust workers, Bytewax processes, Quix Streams"
        " consumers in one group). The towers app needs the instance mesh to run as two"
        " instances (a tower's devices arrive on every partition)."
    )
    body = (
        table(
            ["round", "instances", "events/s", "CPU s per instance", "records per instance"],
            rows,
        )
        + "\n\n"
        + textwrap.fill(note, 88)
    )
    print(body)
    if not args.no_write and args.records == 500_000:
        if args.durable:
            command = "make bench  (python bench/scaleout_bench.py --durable)"
            title = "Scale-out with durable state: the peers' work on two instances"
            write_section("scaleout-durable", title, command, body)
        else:
            command = "make bench  (python bench/scaleout_bench.py)"
            write_section("scaleout", "Scale-out: the peers' work on two instances", command, body)


if __name__ == "__main__":
    main()
