"""End to end on one broker: the raw limit, swimstream, and faust, Quix Streams and Bytewax.

Run: ``.venv/bin/python bench/e2e_bench.py`` (``make bench`` runs every benchmark).
Options: ``--records N`` (default 500,000), ``--only NAME[,NAME]`` (contenders: raw-orjson,
raw-json, swimstream, swimstream-durable, swimstream-devices, faust, quix, bytewax; ``raw``
means both raw
rows), ``--timeout S`` per contender, ``--no-write`` to leave BENCHMARKS.md alone (any run
with ``--only`` or another ``--records`` leaves it alone too), ``--profile`` /
``--no-profile`` to force or skip the py-spy pass over swimstream (by default it runs when
swimstream misses a target and ``.venv/bin/py-spy`` exists), ``--rounds N`` to run every
contender N times in turn and report each one's median round (a single run on this
shared machine can be a third off), ``--commit-interval S`` to run the swimstream rows
with another ``processing.commit_interval`` than the default (such a run leaves
BENCHMARKS.md alone).

One embedded broker (Tansu) serves the whole run. The input topic is produced once: N
readings ``{"device": "42", "tower": "t0", "temp": 71.3, "ts": 3}`` keyed by device, over
10,000 devices and 4 partitions; the readings of 1% of the devices are above 90 (each
one an alert), the others below. Then each contender runs as a child process, cold, and
reads the topic from the beginning in a consumer group nobody used before:

* ``raw-orjson`` / ``raw-json``: a bare confluent-kafka loop (``bench/peers/raw_loop.py``)
  that parses each value and updates a dict per key, the ceiling for one Python process;
* ``swimstream``: ``python -m swimstream run`` with the towers example's agents (readings
  to ``/device/{key}``, lane ``reading``), the ``alerts`` publish sink and the tower
  summary lane sink, ``processing: at-least-once``, and
  state in memory (``store: {durable: false}``), as the peers keep theirs;
* ``swimstream-durable``: the same with the service's defaults, durable state (changelog
  topic and local SQLite, written at every checkpoint) and ``processing: exactly-once``;
* ``swimstream-devices``: the service with only the work the peers do (per-key state and
  alerts, ``bench/peers/swimstream_devices.py``; no tower joins, no summaries), in memory;
* ``faust``, ``quix``, ``bytewax``: the peers (``bench/peers/*_peer.py``), each keeping the
  count and last reading per device and producing an alert record per hot reading. They
  are installed only for this benchmark, each into its own virtual environment under
  ``bench/.peers/<name>/`` (git-ignored), created on the first run with this interpreter's
  ``venv`` and pip and reused afterwards.

A child reports its own completion (a JSON line on stdout when it has processed every
record, see ``bench/peers/peer_common.py``); swimstream is watched through its
``/metrics`` (``swimstream_records_in_total`` reaching N with ``records_in_flight`` 0). The
parent samples the child's CPU time and resident memory with psutil (every 100 ms, the
child's own children included) and counts the alert records each one produced.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e_report import FINDINGS, body_of, misses_target
from bench.e2e_workload import PARTITIONS, produce_workload
from bench.peers.harness import (
    LOGS,
    PY_SPY,
    Contender,
    Result,
    Workload,
    profile_summary,
    run_contender,
)
from bench.report import progress, write_section
from connectors.embedded import FAST_CONSUMER_SETTINGS, EmbeddedKafka, free_ports

REPO = Path(__file__).resolve().parent.parent
PEERS_DIR = REPO / "bench" / "peers"
PEER_ENVS = REPO / "bench" / ".peers"
CONTENDERS = (
    "raw-orjson",
    "raw-json",
    "swimstream",
    "swimstream-durable",
    "swimstream-devices",
    "faust",
    "quix",
    "bytewax",
)


@dataclass(frozen=True)
class PeerEnv:
    """A peer's own virtual environment: what goes in it and which versions to report."""

    name: str
    requirements: tuple[str, ...]
    reported: tuple[str, ...]  # distributions whose versions the table names

    @property
    def path(self) -> Path:
        return PEER_ENVS / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


PEER_ENVS_BY_NAME = {
    "faust": PeerEnv(
        "faust", ("faust-streaming==0.15.3", "orjson"), ("faust-streaming", "aiokafka")
    ),
    "quix": PeerEnv("quix", ("quixstreams==3.28.1",), ("quixstreams", "confluent-kafka")),
    "bytewax": PeerEnv(
        "bytewax", ("bytewax[kafka]==0.21.1", "orjson"), ("bytewax", "confluent-kafka")
    ),
}


# -- peers' virtual environments ----------------------------------------------------


def ensure_peer_env(peer: PeerEnv) -> dict[str, str]:
    """Create (first run) or reuse ``bench/.peers/<name>``; the reported versions."""
    stamp = peer.path / ".bench-installed"
    wanted = "\n".join(peer.requirements)
    if not (stamp.exists() and stamp.read_text() == wanted and peer.python.exists()):
        progress(f"{peer.name}: creating {peer.path.relative_to(REPO)} (first run only)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(peer.path)], check=True)
        command = [str(peer.python), "-m", "pip", "install", "--progress-bar", "off"]
        pip = subprocess.Popen(
            [*command, *peer.requirements],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert pip.stdout is not None
        tail: list[str] = []
        for line in pip.stdout:
            line = line.rstrip()
            tail = [*tail[-20:], line]
            if line.startswith(("Collecting", "Installing", "Successfully", "ERROR")):
                progress(f"{peer.name}: {line}")
        if pip.wait() != 0:
            errors = [line for line in tail if line.startswith("ERROR")] or tail[-1:]
            raise RuntimeError(f"pip install failed: {' '.join(errors)[:300]}")
        stamp.write_text(wanted)
    script = (
        "import importlib.metadata as m, json, sys;"
        "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))"
    )
    shown = subprocess.run(
        [str(peer.python), "-c", script, *peer.reported],
        capture_output=True,
        text=True,
        check=True,
    )
    versions: dict[str, str] = json.loads(shown.stdout)
    return versions


def profile_swimstream(
    name: str,
    kafka: EmbeddedKafka,
    workload: Workload,
    work_dir: Path,
    timeout: float,
    commit_interval: float | None = None,
) -> str:
    """Another pass of a swimstream row under py-spy; its summary, or why there is none."""
    if not PY_SPY.exists():
        return "no profile: py-spy is not installed in .venv (`.venv/bin/pip install py-spy`)."
    progress(f"{name}: a second pass under py-spy, to see where the time goes")
    where = work_dir / f"{name}-profile"
    contender = swimstream_contender(name, kafka, workload, where, commit_interval)
    stacks = LOGS / f"{name}.stacks"  # kept, for flamegraph.pl or another look
    stacks.unlink(missing_ok=True)
    result = run_contender(contender, workload, timeout, profile_to=stacks)
    if result.failure or not stacks.exists():
        return f"no profile: the profiled pass failed ({result.failure or 'no stacks written'})."
    return profile_summary(stacks)


# -- the contenders -----------------------------------------------------------------


def peer_args(workload: Workload, group: str, alerts: str, settings: dict[str, Any]) -> list[str]:
    return [
        "--bootstrap",
        workload.bootstrap,
        "--topic",
        workload.topic,
        "--group",
        group,
        "--alerts-topic",
        alerts,
        "--records",
        str(workload.records),
        "--settings",
        json.dumps(settings),
    ]


TOWERS = {
    "device": {"class": "examples.towers.app:Device", "route": "/device/:id"},
    "tower": {"class": "examples.towers.app:Tower", "route": "/tower/:id"},
    "world": {"class": "examples.towers.app:World", "route": "/world"},
}
DEVICES_ONLY = {
    "device": {"class": "bench.peers.swimstream_devices:Device", "route": "/device/:id"},
}


SUMMARY_COALESCE = "100ms"
"""The tower summaries' lane sink produces each tower's latest summary every 100 ms (as
Kafka Streams' record cache does for a table) rather than one record per change."""

SWIMSTREAM_ROWS = {  # name -> (only the peers' work, durable state)
    "swimstream": (False, False),
    "swimstream-durable": (False, True),
    "swimstream-devices": (True, False),
}


def swimstream_contender(
    name: str,
    kafka: EmbeddedKafka,
    workload: Workload,
    work_dir: Path,
    commit_interval: float | None = None,
) -> Contender:
    """A swimstream row on the input topic, its config written beside its store.

    The towers app, or only the peers' work (``swimstream-devices``); state in memory as
    the peers keep theirs (at-least-once: offsets commit once a record's effects are
    delivered), or durable (``swimstream-durable``: changelog topic and SQLite, written at
    every checkpoint, exactly-once: the service's defaults).
    """
    devices_only, durable = SWIMSTREAM_ROWS[name]
    app = f"e2e-{uuid.uuid4().hex[:8]}"  # the app name is the consumer group
    work_dir.mkdir(parents=True, exist_ok=True)
    alerts = kafka.create_topic(f"{app}-alerts", partitions=PARTITIONS)
    summaries = None if devices_only else kafka.create_topic(f"{app}-summaries", PARTITIONS)
    web_port, mesh_port = free_ports(2)
    sinks: list[dict[str, str]] = [{"publish": "alerts", "topic": alerts}]
    if summaries is not None:
        sinks.insert(
            0, {"from": "/tower/:id#summary", "topic": summaries, "coalesce": SUMMARY_COALESCE}
        )
    config = {
        "app": app,
        "broker": {
            "kind": "kafka",
            "bootstrap": workload.bootstrap,
            "partitions": PARTITIONS,
            "create_topics": True,
            "settings": dict(FAST_CONSUMER_SETTINGS),
        },
        "agents": DEVICES_ONLY if devices_only else TOWERS,
        "sources": [{"topic": workload.topic, "route": "/device/{key}", "lane": "reading"}],
        "sinks": sinks,
        "processing": {
            "guarantee": "exactly-once" if durable else "at-least-once",
            **({} if commit_interval is None else {"commit_interval": commit_interval}),
        },
        "mesh": {"listen": f"127.0.0.1:{mesh_port}"},
        "store": {"path": str(work_dir / "store"), "durable": durable},
        "web": {"listen": f"127.0.0.1:{web_port}"},
    }
    config_path = work_dir / "swimstream.yaml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return Contender(
        name,
        f"confluent-kafka {confluent_version()}",
        [sys.executable, "-m", "swimstream", "run", "--config", str(config_path), *QUIET],
        alerts,
        metrics_url=f"http://127.0.0.1:{web_port}/metrics",
        summaries_topic=summaries,
    )


QUIET = ["--log-level", "warning", "--log-format", "text"]


def confluent_version() -> str:
    import confluent_kafka

    return str(confluent_kafka.__version__)


FAUST_SETTINGS = {
    # Tansu holds a group join for half the session timeout (see connectors/embedded);
    # faust's default is 60 s. aiokafka's fetch wait is fixed at 1.5 s by faust, which
    # only matters once the topic is drained.
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
    "broker_max_poll_records": 1000,
}


def build_contenders(
    names: Sequence[str],
    kafka: EmbeddedKafka,
    workload: Workload,
    work_dir: Path,
    commit_interval: float | None = None,
) -> Iterator[Contender | Result]:
    """Each contender to run, or the row of one that cannot run here and why."""
    for name in names:
        group = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        if name.startswith("raw-"):
            argv = [sys.executable, str(PEERS_DIR / "raw_loop.py")]
            argv += peer_args(workload, group, "unused", dict(FAST_CONSUMER_SETTINGS))
            argv += ["--json", name.removeprefix("raw-")]
            client = f"confluent-kafka {confluent_version()}"
            yield Contender(name, client, argv, None)
        elif name.startswith("swimstream"):
            if not (REPO / "connectors" / "factory.py").exists():
                missing = "not available yet (no Kafka connector in this checkout)"
                yield Result(name, "confluent-kafka", failure=missing)
                continue
            yield swimstream_contender(name, kafka, workload, work_dir / name, commit_interval)
        else:
            peer = PEER_ENVS_BY_NAME[name]
            try:
                versions = ensure_peer_env(peer)
            except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
                yield Result(name, "", failure=f"install failed: {exc}")
                continue
            client = ", ".join(f"{dist} {version}" for dist, version in versions.items())
            alerts = kafka.create_topic(f"{group}-alerts", partitions=PARTITIONS)
            settings: dict[str, Any] = (
                FAUST_SETTINGS if name == "faust" else dict(FAST_CONSUMER_SETTINGS)
            )
            argv = [str(peer.python), str(PEERS_DIR / f"{name}_peer.py")]
            argv += peer_args(workload, group, alerts, settings)
            yield Contender(name, client, argv, alerts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--only", default="", help="comma-separated contenders to run")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per contender")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument(
        "--profile", action="store_true", help="profile swimstream even when it meets its targets"
    )
    parser.add_argument("--no-profile", action="store_true", help="never profile swimstream")
    parser.add_argument(
        "--commit-interval",
        type=positive_seconds,
        default=None,
        help="seconds between checkpoints of the swimstream rows (default: the service's)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="run every contender this many times, in turn, and report each one's median",
    )
    args = parser.parse_args(argv)
    names = expand_only(args.only)
    started = time.monotonic()
    by_round: list[list[Result]] = []
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp, EmbeddedKafka() as kafka:
        progress(f"broker {kafka.title} on {kafka.bootstrap}")
        workload = produce_workload(kafka, args.records)
        for round_number in range(1, args.rounds + 1):
            if args.rounds > 1:
                progress(f"round {round_number} of {args.rounds}")
            work_dir = Path(tmp) / f"round-{round_number}"
            by_round.append(
                run_round(names, kafka, workload, work_dir, args.timeout, args.commit_interval)
            )
        results = medians(by_round)
        profiles: list[str] = []
        for ours in results:
            wanted = args.profile or misses_target(ours, results)
            if ours.name.startswith("swimstream") and not ours.failure and wanted:
                if args.no_profile:
                    continue
                profile = profile_swimstream(
                    ours.name, kafka, workload, Path(tmp), args.timeout, args.commit_interval
                )
                progress(profile)
                profiles.append(f"Profile of {ours.name}: {profile}")
    elapsed = time.monotonic() - started
    spread = rounds_sentence(by_round)
    interval = (
        f"This run gave every swimstream row `processing.commit_interval: {args.commit_interval:g}`"
        " (seconds), not the service's default that the settings below describe."
        if args.commit_interval is not None
        else ""
    )
    notes = "\n\n".join(p for p in [interval, spread, *profiles, FINDINGS] if p)
    body = body_of(results, workload, elapsed, notes, FAUST_SETTINGS, SUMMARY_COALESCE)
    print(body)
    complete = not args.only and args.records == 500_000 and args.commit_interval is None
    if complete and not args.no_write:
        rounds = f" --rounds {args.rounds}" if args.rounds > 1 else ""
        command = f"make bench  (python bench/e2e_bench.py{rounds})"
        write_section("e2e", "End to end: swimstream and its peers", command, body)
    progress(f"the whole run took {elapsed:.0f} s")


def run_round(
    names: Sequence[str],
    kafka: EmbeddedKafka,
    workload: Workload,
    work_dir: Path,
    timeout: float,
    commit_interval: float | None = None,
) -> list[Result]:
    """Every contender once, in order, each in a fresh consumer group."""
    results: list[Result] = []
    for item in build_contenders(names, kafka, workload, work_dir, commit_interval):
        if isinstance(item, Result):
            progress(f"{item.name}: cannot run: {item.failure}")
            results.append(item)
            continue
        progress(f"{item.name}: running ({item.client})")
        result = run_contender(item, workload, timeout)
        progress(f"{item.name}: " + summary(result))
        results.append(result)
    return results


def medians(by_round: Sequence[Sequence[Result]]) -> list[Result]:
    """Each contender's round of median events/s (the upper one of an even count), or
    its failure when no round of it ran: on this shared machine a single run can be a
    third off, so the table shows the typical round, and the text every round."""
    chosen: list[Result] = []
    for name in [r.name for r in by_round[0]]:
        runs = [r for results in by_round for r in results if r.name == name]
        ran = sorted((r for r in runs if not r.failure), key=lambda r: r.steady_rate)
        chosen.append(ran[len(ran) // 2] if ran else runs[-1])
    return chosen


def rounds_sentence(by_round: Sequence[Sequence[Result]]) -> str:
    """Every round's events/s per contender, when there was more than one round."""
    if len(by_round) < 2:
        return ""
    rates: dict[str, list[str]] = {}
    for results in by_round:
        for r in results:
            rates.setdefault(r.name, []).append("failed" if r.failure else f"{r.steady_rate:,.0f}")
    listed = "; ".join(f"{name} {', '.join(values)}" for name, values in rates.items())
    return (
        f"Each row is its contender's median of {len(by_round)} rounds (every contender"
        f" once per round, in the order of the table). Events/s of each round: {listed}."
    )


def positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def expand_only(only: str) -> list[str]:
    if not only:
        return list(CONTENDERS)
    names: list[str] = []
    for name in (part.strip() for part in only.split(",") if part.strip()):
        chosen = [c for c in CONTENDERS if c == name or (name == "raw" and c.startswith("raw-"))]
        if not chosen:
            raise SystemExit(f"--only: unknown contender {name!r} (one of {', '.join(CONTENDERS)})")
        names += [c for c in chosen if c not in names]
    return names


def summary(result: Result) -> str:
    if result.failure:
        return f"FAILED: {result.failure}"
    return (
        f"{result.steady_rate:,.0f} events/s ({result.cold_rate:,.0f} from cold),"
        f" {result.cpu_seconds:.1f} CPU s, {result.peak_rss / 2**20:,.0f} MiB peak,"
        f" alerts {result.alerts if result.alerts is not None else '—'}"
    )


if __name__ == "__main__":
    main()
