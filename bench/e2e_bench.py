"""End to end on one broker: the raw limit, swimstream, and faust, Quix Streams and Bytewax.

Run: ``.venv/bin/python bench/e2e_bench.py`` (``make bench`` runs every benchmark).
Options: ``--records N`` (default 500,000), ``--only NAME[,NAME]`` (contenders: raw-orjson,
raw-json, swimstream, faust, quix, bytewax; ``raw`` means both raw rows), ``--timeout S``
per contender, ``--no-write`` to leave BENCHMARKS.md alone (any run with ``--only`` or a
smaller ``--records`` leaves it alone too).

One embedded broker (Tansu) serves the whole run. The input topic is produced once: N
readings ``{"device": "42", "tower": "t0", "temp": 71.3, "ts": 3}`` keyed by device, over
10,000 devices and 4 partitions; the readings of 1% of the devices are above 90 (each
one an alert), the others below. Then each contender runs as a child process, cold, and
reads the topic from the beginning in a consumer group nobody used before:

* ``raw-orjson`` / ``raw-json``: a bare confluent-kafka loop (``bench/peers/raw_loop.py``)
  that parses each value and updates a dict per key, the ceiling for one Python process;
* ``swimstream``: ``python -m swimstream run`` with the towers example's agents (readings
  to ``/device/{key}``, lane ``reading``), the ``alerts`` publish sink and the tower
  summary lane sink, ``processing: at-least-once``;
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
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import progress, table, write_section
from connectors.embedded import FAST_CONSUMER_SETTINGS, EmbeddedKafka, free_ports

REPO = Path(__file__).resolve().parent.parent
PEERS_DIR = REPO / "bench" / "peers"
PEER_ENVS = REPO / "bench" / ".peers"
LOGS = PEER_ENVS / "logs"
PARTITIONS = 4
KEYS = 10_000
HOT_SHARE = 100  # one device in this many is hot
HOT_TEMPERATURE = 90.0
RAW_TARGET_SHARE = 0.30
SWIMSTREAM_TARGET = 150_000
CONTENDERS = ("raw-orjson", "raw-json", "swimstream", "faust", "quix", "bytewax")
PY_SPY = Path(sys.executable).parent / "py-spy"  # `.venv/bin/pip install py-spy` to profile
PROFILE_RATE = 250


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


@dataclass
class Result:
    """One row of the table."""

    name: str
    client: str
    failure: str = ""
    started: float = 0.0
    first: float = 0.0
    done: float = 0.0
    records: int = 0
    cpu_seconds: float = 0.0
    peak_rss: int = 0
    alerts: int | None = None
    summaries: int | None = None

    @property
    def steady_rate(self) -> float:
        """Records per second from the first record in to the last one processed."""
        return self.records / max(self.done - self.first, 1e-9)

    @property
    def cold_rate(self) -> float:
        """Records per second from the process start to the last record processed."""
        return self.records / max(self.done - self.started, 1e-9)


@dataclass
class Workload:
    """The input topic, produced once, and what every contender should find in it."""

    bootstrap: str
    topic: str
    records: int
    hot_readings: int


@dataclass
class Contender:
    """How to start one contender and how to tell that it is done."""

    name: str
    client: str
    argv: list[str]
    alerts_topic: str | None
    metrics_url: str | None = None  # swimstream: completion from /metrics
    summaries_topic: str | None = None
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


# -- the workload -----------------------------------------------------------------


def readings(records: int) -> Iterator[tuple[bytes, bytes, bool]]:
    """The input records: (key, JSON value, hot) for reading n, device n mod KEYS."""
    for n in range(records):
        device = n % KEYS
        hot = device % HOT_SHARE == 7
        temp = 90.5 + (n % 95) / 10 if hot else 20.0 + (n * 7 % 690) / 10
        value = {"device": str(device), "tower": f"t{device // 100}", "temp": temp, "ts": n // KEYS}
        yield str(device).encode(), orjson.dumps(value), hot


def produce_workload(kafka: EmbeddedKafka, records: int) -> Workload:
    """Create the input topic and produce every reading to it, batched."""
    topic = kafka.create_topic(f"readings-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "partitioner": "murmur2_random",  # as the Java clients, and swimstream's default
        }
    )
    hot_readings = 0
    started = time.perf_counter()
    for n, (key, value, hot) in enumerate(readings(records), 1):
        hot_readings += hot
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 100_000 == 0:
            producer.poll(0)
            progress(f"produced {n:,} / {records:,} readings")
    remaining = producer.flush(60)
    if remaining or failures:
        raise SystemExit(f"producing failed: {remaining} undelivered, {failures[:3]}")
    elapsed = time.perf_counter() - started
    progress(f"topic {topic}: {records:,} readings in {elapsed:.1f} s ({records / elapsed:,.0f}/s)")
    return Workload(kafka.bootstrap, topic, records, hot_readings)


def count_records(bootstrap: str, topic: str, timeout: float = 30.0) -> int:
    """How many records ``topic`` holds, read to the end of every partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-count-{uuid.uuid4().hex[:8]}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            **FAST_CONSUMER_SETTINGS,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = list(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        pending, count = set(partitions), 0
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.2):
                error = message.error()
                if error is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
        return count
    finally:
        consumer.close()


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


# -- one contender ------------------------------------------------------------------


class ResourceMonitor:
    """Samples a process tree's resident memory every 100 ms and reads its CPU time."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return []

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = 0
            for process in self._tree():
                with contextlib.suppress(psutil.Error):
                    rss += process.memory_info().rss
            self.peak_rss = max(self.peak_rss, rss)
            self._stop.wait(0.1)

    def cpu_seconds(self) -> float:
        """User and system time of the tree so far (exited children it reaped included)."""
        total = 0.0
        for process in self._tree():
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def metric_total(text: str, name: str) -> float | None:
    """The sum of a metric's samples over its label sets in Prometheus text, if present."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.M)
    values = [float(value) for value in pattern.findall(text)]
    return sum(values) if values else None


class Watch:
    """What a running contender said so far: report lines from stdout, or its metrics."""

    def __init__(self, process: subprocess.Popen[str], contender: Contender, total: int) -> None:
        self.contender = contender
        self.total = total
        self.first = 0.0
        self.done = 0.0
        self.records = 0
        self._lock = threading.Lock()
        if contender.metrics_url is None:
            assert process.stdout is not None
            stdout = process.stdout
            threading.Thread(target=self._read, args=(stdout,), daemon=True).start()

    def _read(self, stdout: Any) -> None:
        for line in stdout:
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if not isinstance(report, dict):
                continue
            with self._lock:
                event = report.get("event")
                if event == "first" and not self.first:
                    self.first = float(report["t"])
                elif event == "progress":
                    self.records = int(report["records"])
                elif event == "done":
                    self.records = int(report["records"])
                    self.done = float(report["t"])

    def poll_metrics(self) -> None:
        """For swimstream: read /metrics (nothing yet while the server is starting)."""
        assert self.contender.metrics_url is not None
        try:
            with urllib.request.urlopen(self.contender.metrics_url, timeout=2) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError):
            return
        now = time.time()
        records = int(metric_total(text, "swimstream_records_in_total") or 0)
        in_flight = metric_total(text, "swimstream_records_in_flight")
        with self._lock:
            self.records = records
            if records and not self.first:
                self.first = now
            if records >= self.total and in_flight == 0 and not self.done:
                self.done = now

    def snapshot(self) -> tuple[float, float, int]:
        with self._lock:
            return self.first, self.done, self.records


def run_contender(
    contender: Contender, workload: Workload, timeout: float, profile_to: Path | None = None
) -> Result:
    """Start the contender cold, wait until it processed every record, measure it.

    With ``profile_to`` the contender runs under ``py-spy record`` (raw stacks written
    there); its figures then include py-spy's own work and are not reported.
    """
    result = Result(contender.name, contender.client)
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{contender.name}{'-profile' if profile_to else ''}.log"
    metrics = contender.metrics_url is not None
    argv = contender.argv
    if profile_to is not None:
        argv = [str(PY_SPY), "record", "--rate", str(PROFILE_RATE), "--nonblocking"]
        argv += ["--full-filenames", "--format", "raw", "--output", str(profile_to), "--"]
        argv += contender.argv
    with log_path.open("w") as log:
        result.started = time.time()
        process = subprocess.Popen(
            argv,
            cwd=contender.cwd,
            env=contender.env,
            stdout=log if metrics else subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        monitor = ResourceMonitor(process.pid)
        watch = Watch(process, contender, workload.records)
        deadline = time.monotonic() + timeout
        next_progress = time.monotonic() + 5
        try:
            while True:
                if metrics:
                    watch.poll_metrics()
                first, done, records = watch.snapshot()
                if done:
                    break
                if process.poll() is not None:
                    result.failure = f"exited with status {process.returncode}: " + log_tail(
                        log_path
                    )
                    break
                if time.monotonic() > deadline:
                    result.failure = f"timed out after {timeout:.0f} s at {records:,} records"
                    break
                if time.monotonic() > next_progress:
                    next_progress += 5
                    progress(f"{contender.name}: {records:,} / {workload.records:,} records")
                time.sleep(0.1 if metrics else 0.02)
            result.cpu_seconds = monitor.cpu_seconds()
        finally:
            monitor.stop()
            stop_process(process, inner=profile_to is not None)
    result.peak_rss = monitor.peak_rss
    result.first, result.done, result.records = first, done, records
    if not result.failure and contender.alerts_topic is not None:
        result.alerts = count_records(workload.bootstrap, contender.alerts_topic)
    if not result.failure and contender.summaries_topic is not None:
        result.summaries = count_records(workload.bootstrap, contender.summaries_topic)
    return result


def stop_process(process: subprocess.Popen[str], grace: float = 30.0, inner: bool = False) -> None:
    """SIGTERM (so sinks flush), then SIGKILL after ``grace`` seconds.

    ``inner``: the process is py-spy; stop only its child, so py-spy writes its stacks.
    """
    if process.poll() is None:
        if inner:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(process.pid).children():
                    child.terminate()
        else:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def log_tail(path: Path, lines: int = 3) -> str:
    """The last lines of a child's log, as one line, for a failed row."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    tail = " / ".join(line.strip() for line in text[-lines:] if line.strip())
    return tail[-400:] or "(empty log)"


# -- where swimstream's time goes -----------------------------------------------------

_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")


def frame_of(frame: str) -> tuple[str, str]:
    """(function, path) of one py-spy frame ``name (path:line)``."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return match["function"], match["path"]


def module_of(path: str) -> str:
    """A readable module name for a source path: ours dotted, others by package."""
    if path.startswith(str(REPO) + "/"):
        relative = Path(path).relative_to(REPO).with_suffix("")
        return ".".join(relative.parts)
    for marker in ("site-packages/", "/lib/python3."):
        if marker in path:
            rest = path.split(marker, 1)[1]
            rest = rest.split("/", 1)[1] if marker.startswith("/lib") else rest
            return rest.split("/", 1)[0].removesuffix(".py")
    return path or "?"


def profile_summary(path: Path, top: int = 8) -> str:
    """Self time by module and inclusive time of swimstream's own functions, from raw stacks.

    Stacks under an import are start-up and left out. Time inside C extensions
    (librdkafka, orjson) shows as the Python function that called them.
    """
    self_time: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = startup = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_of(frame) for frame in stack.split(";")]
        if any(function == "_find_and_load" for function, _ in frames):
            startup += count
            continue
        total += count
        leaf_module = module_of(frames[-1][1])
        self_time[leaf_module] = self_time.get(leaf_module, 0) + count
        seen: set[str] = set()
        for function, frame_path in frames:
            module = module_of(frame_path)
            if not module.startswith(("swimstream.", "connectors.", "examples.")):
                continue
            name = f"{module}.{function}"
            if name not in seen:
                seen.add(name)
                inclusive[name] = inclusive.get(name, 0) + count
    if not total:
        return "py-spy recorded no samples."

    def ranked(counts: dict[str, int]) -> str:
        best = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return ", ".join(f"`{name}` {count / total:.0%}" for name, count in best)

    return (
        f"{total:,} samples at {PROFILE_RATE} Hz while processing ({startup:,} more during"
        f" imports, left out). Self time by module: {ranked(self_time)}. Inclusive time of"
        f" swimstream's functions: {ranked(inclusive)}."
    )


def profile_swimstream(
    kafka: EmbeddedKafka, workload: Workload, work_dir: Path, timeout: float
) -> str:
    """A second swimstream pass under py-spy; its summary, or why there is none."""
    if not PY_SPY.exists():
        return "No profile: py-spy is not installed in .venv (`.venv/bin/pip install py-spy`)."
    progress("swimstream: a second pass under py-spy, to see where the time goes")
    contender = swimstream_contender(kafka, workload, work_dir / "profile")
    stacks = work_dir / "swimstream.stacks"
    result = run_contender(contender, workload, timeout, profile_to=stacks)
    if result.failure or not stacks.exists():
        return f"No profile: the profiled pass failed ({result.failure or 'no stacks written'})."
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


def swimstream_contender(kafka: EmbeddedKafka, workload: Workload, work_dir: Path) -> Contender:
    """The towers app on the input topic, with its config written next to its store."""
    app = f"e2e-{uuid.uuid4().hex[:8]}"  # the app name is the consumer group
    work_dir.mkdir(parents=True, exist_ok=True)
    alerts = kafka.create_topic(f"{app}-alerts", partitions=PARTITIONS)
    summaries = kafka.create_topic(f"{app}-summaries", partitions=PARTITIONS)
    web_port, mesh_port = free_ports(2)
    config = {
        "app": app,
        "broker": {
            "kind": "kafka",
            "bootstrap": workload.bootstrap,
            "partitions": PARTITIONS,
            "create_topics": True,
            "settings": dict(FAST_CONSUMER_SETTINGS),
        },
        "agents": {
            "device": {"class": "examples.towers.app:Device", "route": "/device/:id"},
            "tower": {"class": "examples.towers.app:Tower", "route": "/tower/:id"},
            "world": {"class": "examples.towers.app:World", "route": "/world"},
        },
        "sources": [{"topic": workload.topic, "route": "/device/{key}", "lane": "reading"}],
        "sinks": [
            {"from": "/tower/:id#summary", "topic": summaries},
            {"publish": "alerts", "topic": alerts},
        ],
        "processing": "at-least-once",
        "mesh": {"listen": f"127.0.0.1:{mesh_port}"},
        "store": {"path": str(work_dir / "store")},
        "web": {"listen": f"127.0.0.1:{web_port}"},
    }
    config_path = work_dir / "swimstream.yaml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return Contender(
        "swimstream",
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
    names: Sequence[str], kafka: EmbeddedKafka, workload: Workload, work_dir: Path
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
        elif name == "swimstream":
            if not (REPO / "connectors" / "factory.py").exists():
                missing = "not available yet (no Kafka connector in this checkout)"
                yield Result(name, "confluent-kafka", failure=missing)
                continue
            yield swimstream_contender(kafka, workload, work_dir)
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


# -- the report ---------------------------------------------------------------------


def rows_of(results: Sequence[Result], workload: Workload) -> list[list[str]]:
    raw = next((r for r in results if r.name == "raw-orjson" and not r.failure), None)
    rows = []
    for r in results:
        if r.failure:
            rows.append([r.name, r.client, f"failed: {r.failure}", "", "", "", "", "", "", ""])
            continue
        share = f"{r.steady_rate / raw.steady_rate:.0%}" if raw else ""
        alerts = "—" if r.alerts is None else f"{r.alerts:,}"
        rows.append(
            [
                r.name,
                r.client,
                f"{r.steady_rate:,.0f}",
                share,
                f"{r.cold_rate:,.0f}",
                f"{r.first - r.started:.1f}",
                f"{r.done - r.started:.1f}",
                f"{r.cpu_seconds:.1f}",
                f"{r.peak_rss / 2**20:,.0f}",
                alerts,
            ]
        )
    return rows


HEADERS = [
    "contender",
    "client",
    "events/s",
    "of raw",
    "events/s from cold",
    "start → first record (s)",
    "start → done (s)",
    "CPU s",
    "peak RSS (MiB)",
    "alerts out",
]


def summaries_sentence(results: Sequence[Result]) -> str:
    ours = next((r for r in results if r.name == "swimstream" and r.summaries is not None), None)
    if ours is None:
        return ""
    return f" swimstream also produced {ours.summaries:,} tower summaries (its lane sink)."


def below_target(results: Sequence[Result]) -> bool:
    """Whether swimstream ran and missed one of its targets."""
    by_name = {r.name: r for r in results if not r.failure}
    ours, raw = by_name.get("swimstream"), by_name.get("raw-orjson")
    if ours is None:
        return False
    share_missed = raw is not None and ours.steady_rate < RAW_TARGET_SHARE * raw.steady_rate
    return ours.steady_rate < SWIMSTREAM_TARGET or share_missed


def targets_line(results: Sequence[Result]) -> str:
    """Whether swimstream met its targets, as a sentence."""
    by_name = {r.name: r for r in results if not r.failure}
    ours, raw = by_name.get("swimstream"), by_name.get("raw-orjson")
    if ours is None:
        return "swimstream did not run, so its targets are not judged."
    verdicts = [
        f"{ours.steady_rate:,.0f} events/s against ≥ {SWIMSTREAM_TARGET:,}: "
        + ("pass" if ours.steady_rate >= SWIMSTREAM_TARGET else "BELOW")
    ]
    if raw is not None:
        share = ours.steady_rate / raw.steady_rate
        verdicts.append(
            f"{share:.0%} of the raw limit against ≥ {RAW_TARGET_SHARE:.0%}: "
            + ("pass" if share >= RAW_TARGET_SHARE else "BELOW")
        )
    return "swimstream's targets: " + "; ".join(verdicts) + "."


def body_of(results: Sequence[Result], workload: Workload, elapsed: float, notes: str) -> str:
    settings = ", ".join(f"`{k}={v}`" for k, v in FAST_CONSUMER_SETTINGS.items())
    faust = ", ".join(f"`{k}={v}`" for k, v in FAUST_SETTINGS.items())
    text = table(HEADERS, rows_of(results, workload))
    text += (
        f"\n\n{workload.records:,} readings of {KEYS:,} devices on {PARTITIONS} partitions of one"
        f" embedded Tansu broker, produced once per run; {workload.hot_readings:,} of them"
        f" (the readings of 1% of the devices) are hotter than {HOT_TEMPERATURE:.0f} and should"
        " each give one alert. Every contender is a child process started cold that reads the"
        " topic from the beginning in a fresh consumer group. *events/s* counts from its first"
        " record in to its last one processed (the processing rate; *of raw* compares it with"
        " raw-orjson); *events/s from cold* counts from the process start, so it also pays"
        " the interpreter, the imports and the group join, which Tansu holds for half the"
        " session timeout (3 s here). CPU seconds (user + system) and peak RSS are the"
        " child's and its children's, sampled with psutil every 100 ms, up to completion."
        f" *alerts out* is what the alerts topic held after the child was stopped."
        f"{summaries_sentence(results)} The whole run took {elapsed:.0f} s.\n\n"
        f"Settings: every librdkafka consumer (raw, swimstream, Quix, Bytewax) gets {settings}"
        " (FAST_CONSUMER_SETTINGS, as DESIGN.md recommends for Tansu); swimstream runs"
        " `processing: at-least-once` with its own producer defaults. faust's client is"
        f" aiokafka (pure Python) with {faust}. Per-key state is in memory everywhere, as"
        " swimstream's at-least-once mode keeps it: faust in a dict (a faust Table would add"
        " a changelog record per reading), Quix in its MemoryStore without changelog topics,"
        " Bytewax in `stateful_map` without a recovery store. Bytewax assigns partitions"
        " itself (no consumer group) and runs one worker. The raw loop produces no alerts."
        f"\n\n{targets_line(results)}"
    )
    if notes:
        text += f"\n\n{notes.strip()}"
    return text


FINDINGS = ""
"""Where the time goes when a figure misses its target (from profiling; see below)."""


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
    args = parser.parse_args(argv)
    names = expand_only(args.only)
    started = time.monotonic()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp, EmbeddedKafka() as kafka:
        progress(f"broker {kafka.title} on {kafka.bootstrap}")
        workload = produce_workload(kafka, args.records)
        for item in build_contenders(names, kafka, workload, Path(tmp)):
            if isinstance(item, Result):
                progress(f"{item.name}: cannot run: {item.failure}")
                results.append(item)
                continue
            progress(f"{item.name}: running ({item.client})")
            result = run_contender(item, workload, args.timeout)
            progress(f"{item.name}: " + summary(result))
            results.append(result)
        profile = ""
        ours = next((r for r in results if r.name == "swimstream" and not r.failure), None)
        if ours is not None and not args.no_profile and (args.profile or below_target(results)):
            profile = profile_swimstream(kafka, workload, Path(tmp), args.timeout)
            progress(profile)
    elapsed = time.monotonic() - started
    notes = "\n\n".join(part for part in (profile and f"Profile: {profile}", FINDINGS) if part)
    body = body_of(results, workload, elapsed, notes)
    print(body)
    complete = not args.only and args.records == 500_000
    if complete and not args.no_write:
        command = "make bench  (python bench/e2e_bench.py)"
        path = write_section("e2e", "End to end: swimstream and its peers", command, body)
        progress(f"wrote {path}")
    progress(f"the whole run took {elapsed:.0f} s")


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
