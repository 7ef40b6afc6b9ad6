"""The harness every contender of ``bench/e2e_bench.py`` runs under, and its measurements.

A contender is a child process started cold. The harness starts it, follows its progress
(the report lines it prints, see ``peer_common.py``, or swimstream's ``/metrics``), samples
its CPU time and resident memory with psutil (every 100 ms, its own children included),
stops it with SIGTERM once it has processed every record (so its sinks flush), and counts
what it produced. It can also run a contender under ``py-spy record`` and summarise the
stacks, to show where the time goes. It runs in the project's .venv, not a peer's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, KafkaError, TopicPartition

from bench.report import progress
from connectors.embedded import FAST_CONSUMER_SETTINGS

REPO = Path(__file__).resolve().parent.parent.parent
LOGS = REPO / "bench" / ".peers" / "logs"
PY_SPY = Path(sys.executable).parent / "py-spy"  # `.venv/bin/pip install py-spy` to profile
PROFILE_RATE = 250


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
    busy_elsewhere: float = 0.0  # cores busy outside the child meanwhile (broker, others)

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


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (every core, every process)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


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
        busy_before = busy_cpu_seconds()
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
            elapsed = max(time.time() - result.started, 1e-9)
            busy = busy_cpu_seconds() - busy_before - result.cpu_seconds
            result.busy_elsewhere = max(busy, 0.0) / elapsed
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


_OURS = ("swimstream.", "connectors.", "examples.")
_ENTRY = ("swimstream.__main__", "swimstream.cli.")  # wrap everything: not informative


def layer_of(module: str) -> str:
    """The layer a module belongs to: ``swimstream.runtime``, ``connectors.kafka``, ..."""
    if module.startswith(_OURS):
        return ".".join(module.split(".")[:2])
    return module


def profile_summary(path: Path, top: int = 8) -> str:
    """Where the time went, from py-spy's raw stacks: self time by layer and by function,
    and the inclusive time of swimstream's own functions.

    Stacks under an import are start-up and left out. Time inside C extensions
    (librdkafka, orjson) shows as the Python function that called them.
    """
    by_layer: dict[str, int] = {}
    by_function: dict[str, int] = {}
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
        leaf_function, leaf_path = frames[-1]
        leaf_module = module_of(leaf_path)
        layer = layer_of(leaf_module)
        by_layer[layer] = by_layer.get(layer, 0) + count
        leaf = f"{leaf_module}.{leaf_function}"
        by_function[leaf] = by_function.get(leaf, 0) + count
        seen: set[str] = set()
        for function, frame_path in frames:
            module = module_of(frame_path)
            if not module.startswith(_OURS) or module.startswith(_ENTRY):
                continue
            name = f"{module}.{function}"
            if name not in seen:
                seen.add(name)
                inclusive[name] = inclusive.get(name, 0) + count
    if not total:
        return "py-spy recorded no samples."

    def ranked(counts: dict[str, int], limit: int = top) -> str:
        best = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return ", ".join(f"`{name}` {count / total:.0%}" for name, count in best)

    return (
        f"{total:,} samples at {PROFILE_RATE} Hz while processing ({startup:,} more during"
        f" imports, left out). Self time by layer: {ranked(by_layer)}. Self time by"
        f" function: {ranked(by_function)}. Inclusive time of swimstream's functions:"
        f" {ranked(inclusive, top + 4)}."
    )
