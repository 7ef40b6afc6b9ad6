"""Latency end to end: from a reading produced to its alert readable downstream.

Run: ``.venv/bin/python bench/latency_bench.py`` (``make bench`` runs it). Options:
``--rate N`` readings a second (default 2,000), ``--seconds S`` of steady load per row
(default 20), ``--no-write`` to leave BENCHMARKS.md alone (a run with other options
leaves it alone too).

The e2e bench measures throughput with a backlog; a user watching alerts feels latency
at a steady rate instead. One embedded Tansu; for each row, a fresh swimstream instance
of the towers app (the e2e bench's config) is started and waited for until ready, then
the bench produces readings of 1,000 devices at a steady rate, one in twenty hot
(above 90, so the device publishes an alert), each hot one with a temperature no other
reading of that device has. A ``read_committed`` consumer of the alerts topic matches
every alert to the reading that caused it, by device and temperature, and takes the
time from the reading's ``produce()`` to the alert's arrival: the producer's batching,
the broker, the service's fetch, routing, agent and sink, the transaction's commit when
there is one, and the consumer's fetch. The first row is the floor under all of it: the
same consumer reading the readings topic itself, with no service in between.

While the at-least-once instance runs, the bench also follows the status lane of 20 of
the devices as Server-Sent Events, as a dashboard does (``?lane=status&stream=1``), and
times each reading of theirs to the event showing its ``ts``: one broker hop, the
service, and the stream's batching (at most one write every 50 ms).

Rows: *at-least-once, in memory* (insights are produced as they happen); *exactly-once,
durable* (the service's defaults: insights are part of a checkpoint's transaction, so a
``read_committed`` consumer sees them once it commits, every ``commit_interval``, 100 ms
by default, as Kafka Streams' ``commit.interval.ms``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e_bench import swimstream_contender
from bench.e2e_workload import PARTITIONS
from bench.peers.harness import Workload
from bench.report import progress, table, write_section
from connectors.embedded import FAST_CONSUMER_SETTINGS, EmbeddedKafka
from integration.support import Instance

DEVICES = 1_000
HOT_EVERY = 20
"""One reading in this many is hot (above 90): an alert each."""
READY_TIMEOUT = 60.0
DRAIN = 5.0
"""Seconds after the last reading to wait for the alerts still on their way."""

Key = tuple[str, float]
"""(device, temperature): names a hot reading, and the alert it causes; (device, ts):
names a reading, and the change of its device's status lane it causes."""
VIEWED = frozenset(range(0, DEVICES, 50))
"""Devices whose status lane the bench follows as a live view (SSE), as a dashboard does."""


class Matcher:
    """Send times of hot readings, and the latencies of the alerts that came back."""

    def __init__(self) -> None:
        self.sent: dict[Key, float] = {}
        self.latencies: list[float] = []
        self.unmatched = 0
        self._lock = threading.Lock()

    def note_sent(self, key: Key, at: float) -> None:
        with self._lock:
            self.sent[key] = at

    def note_seen(self, key: Key, at: float) -> None:
        with self._lock:
            sent = self.sent.pop(key, None)
            if sent is None:
                self.unmatched += 1
            else:
                self.latencies.append(at - sent)


def consume(
    bootstrap: str,
    topic: str,
    key_of: Callable[[bytes], Key | None],
    matcher: Matcher,
    stop: threading.Event,
    ready: threading.Event,
) -> None:
    """Read ``topic`` from its start (``read_committed``) until ``stop``; match each record."""
    consumer = Consumer(
        {
            **FAST_CONSUMER_SETTINGS,
            "bootstrap.servers": bootstrap,
            "group.id": f"latency-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.subscribe([topic], on_assign=lambda _c, _p: ready.set())
    try:
        while not stop.is_set():
            for message in consumer.consume(500, 0.01):
                if message.error() is not None:
                    continue
                key = key_of(message.value() or b"")
                if key is not None:
                    matcher.note_seen(key, time.perf_counter())
    finally:
        consumer.close()


def alert_key(value: bytes) -> Key:
    alert = orjson.loads(value)
    return str(alert["device"]), float(alert["temp"])


def reading_key(value: bytes) -> Key | None:
    reading = orjson.loads(value)
    temp = float(reading["temp"])
    return (str(reading["device"]), temp) if temp > 90 else None


def produce_steady(
    bootstrap: str,
    topic: str,
    rate: int,
    seconds: float,
    alerts: Matcher,
    views: Matcher | None = None,
) -> int:
    """Readings at ``rate`` a second for ``seconds``; returns how many were hot. Hot ones
    go to ``alerts``, and every reading of a :data:`VIEWED` device to ``views``."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    hot = 0
    started = time.perf_counter()
    sent = 0
    total = int(rate * seconds)
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate))
        while sent < due:
            device = sent % DEVICES
            is_hot = sent % HOT_EVERY == 0
            # A hot reading's temperature is its own, so its alert names it.
            temp = 90.5 + sent / 1_000_000 if is_hot else 40.0 + (sent * 7 % 400) / 10
            value = {"device": str(device), "tower": f"t{device // 50}", "temp": temp, "ts": sent}
            now = time.perf_counter()
            if is_hot:
                hot += 1
                alerts.note_sent((str(device), temp), now)
            if views is not None and device in VIEWED:
                views.note_sent((str(device), float(sent)), now)
            producer.produce(topic, orjson.dumps(value), str(device).encode())
            sent += 1
        producer.poll(0)
        time.sleep(0.001)
    producer.flush(30)
    return hot


def watch_view(
    url: str, device: int, views: Matcher, streams: list[http.client.HTTPConnection]
) -> None:
    """Follow ``/device/<device>?lane=status`` as Server-Sent Events until its connection
    is shut (``streams`` lists it for that); each ``set`` event is matched to the reading
    whose ``ts`` it shows."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    connection.request("GET", f"/device/{device}?lane=status&stream=1")
    streams.append(connection)
    response = connection.getresponse()
    event = ""
    try:
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event == "set":
                status = orjson.loads(line[len("data: ") :])
                if status is not None:
                    views.note_seen((str(device), float(status["ts"])), time.perf_counter())
    except (OSError, http.client.HTTPException):
        pass  # shut down by the bench
    finally:
        connection.close()


def measure(
    kafka: EmbeddedKafka, name: str, rate: int, seconds: float, work: Path
) -> list[list[str]]:
    """Start the instance (none for the floor), load it, and read the latencies: one
    row, and for ``swimstream`` a second one for its live views."""
    readings = kafka.create_topic(f"latency-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    instance: Instance | None = None
    if name == "broker only":
        watched, key_of = readings, reading_key
    else:
        workload = Workload(kafka.bootstrap, readings, 0, 0)
        contender = swimstream_contender(name, kafka, workload, work / name)
        assert contender.alerts_topic is not None
        watched, key_of = contender.alerts_topic, alert_key
        config_path = Path(contender.argv[contender.argv.index("--config") + 1])
        instance = Instance(json.loads(config_path.read_text()), work / name, name).start()
        instance.wait_ready(READY_TIMEOUT)
    alerts = Matcher()
    views = Matcher() if name == "swimstream" else None
    stop, ready = threading.Event(), threading.Event()
    streams: list[http.client.HTTPConnection] = []
    threads = [
        threading.Thread(
            target=consume, args=(kafka.bootstrap, watched, key_of, alerts, stop, ready)
        )
    ]
    if views is not None and instance is not None:
        threads += [
            threading.Thread(target=watch_view, args=(instance.url, device, views, streams))
            for device in VIEWED
        ]
    for thread in threads:
        thread.start()
    try:
        if not ready.wait(READY_TIMEOUT):
            raise SystemExit(f"{name}: the alerts consumer got no assignment")
        progress(f"{name}: {rate:,} readings/s for {seconds:g} s")
        hot = produce_steady(kafka.bootstrap, readings, rate, seconds, alerts, views)
        deadline = time.monotonic() + DRAIN
        while (alerts.sent or (views and views.sent)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for stream in streams:
            if stream.sock is not None:
                stream.sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join()
        if instance is not None:
            instance.signal(signal.SIGTERM)
            instance.wait_exit(30)
    rows = [row_of(name, alerts, hot)]
    if views is not None:
        rows.append(row_of("live view", views, int(rate * seconds) * len(VIEWED) // DEVICES))
    return rows


def row_of(name: str, matcher: Matcher, expected: int) -> list[str]:
    """A table row: how many came back, and the latency percentiles in milliseconds."""
    found = matcher.latencies
    if len(found) < 2:
        raise SystemExit(f"{name}: {len(found)} of {expected:,} came back")
    cuts = statistics.quantiles(found, n=100)
    ms = [f"{1000 * value:,.1f}" for value in (cuts[49], cuts[89], cuts[98], max(found))]
    return [name, f"{len(found):,} of {expected:,}", f"{matcher.unmatched:,}", *ms]


ROWS = {
    "broker only": "broker only",
    "swimstream": "at-least-once, in memory",
    "live view": "a live view of a lane (SSE), at-least-once",
    "swimstream-durable": "exactly-once, durable (the defaults)",
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp, EmbeddedKafka() as kafka:
        progress(f"broker {kafka.title} on {kafka.bootstrap}")
        for name in ("broker only", "swimstream", "swimstream-durable"):
            for row in measure(kafka, name, args.rate, args.seconds, Path(tmp)):
                title = ROWS[row[0]]
                rows.append([title, *row[1:]])
                progress(f"{title}: p50 {row[3]} ms, p99 {row[5]} ms")
    headers = ["path", "matched", "unmatched", "p50 (ms)", "p90 (ms)", "p99 (ms)", "max (ms)"]
    body = (
        table(headers, rows)
        + f"\n\n{args.rate:,} readings a second of {DEVICES:,} devices for {args.seconds:g} s"
        f" per row, one in {HOT_EVERY} hot, on {PARTITIONS} partitions of one embedded Tansu;"
        " the time from each hot reading's `produce()` to its alert read by a"
        " `read_committed` consumer (the first row: to the reading itself, read from the"
        " input topic, the floor under the others); *unmatched* counts alerts with no"
        " reading left to pair with (a repeated alert would show there). The live view"
        f" row follows the status lane of {len(VIEWED)} devices over HTTP (Server-Sent"
        " Events) during the at-least-once run, from each of their readings' `produce()`"
        " to the event showing it. The instance"
        " runs the towers app with the e2e bench's config, started and ready before the"
        " load begins; the producer lingers 5 ms, every consumer uses"
        " FAST_CONSUMER_SETTINGS, with `fetch.wait.max.ms` 10 for the bench's own."
    )
    print(body)
    if not args.no_write and args.rate == 2_000 and args.seconds == 20.0:
        write_section(
            "latency",
            "Latency: a reading in, its alert out",
            "make bench  (python bench/latency_bench.py)",
            body,
        )


if __name__ == "__main__":
    main()
