"""Soak the towers app under churn: a second instance, multiplexed streams, passivation.

One instance runs in this process (so every container reachable from it is sampled, as
``bench/soak.py`` does) on an embedded Kafka with durable state, small
``max_active_agents`` and ``idle_timeout`` so agents passivate all the time, while:
the simulated fleet produces readings at a steady rate; a second instance (a child
``swimstream run``) joins the group and leaves it again every ``--churn`` seconds, so
partitions and shards move back and forth; two long-lived multiplexed dashboard streams
(``GET /_streams``) link and unlink lanes; short-lived ones connect, link and drop.
Every ``--every`` seconds it prints RSS, what glibc's malloc holds (in use, and freed but
kept), the arenas of Python's small-object allocator and what their live blocks hold,
``/metrics`` levels, the plane's tables, the durable store's overlay (its size, how many
checkpoints its oldest entry waits behind, entries of shards this instance does not
hold: an entry never let go would show in these) and the hand-over restores so far with
the largest tail one read. At the end of the load and once idle it prints the object
types that grew since warm-up.

At the end it stops the producer and the second instance, lets the first settle, and
checks every device's lanes over HTTP against the towers app written by hand
(:mod:`bench.towers_by_hand`) fed the records produced, each tower's summary against its
own join lane and the world's totals against the towers' summaries; then it closes the
long-lived streams and checks that the streams and links open go back to zero.

Run (one soak at a time): ``PYTHONPATH=. .venv/bin/python bench/soak_churn.py
--duration 720``. Not run by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import logging
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
import psutil
from confluent_kafka import Producer

from bench.restore_memory import malloc_totals, python_allocator
from bench.soak import _parse_metrics, container_sizes, report
from bench.towers_by_hand import TowersByHand
from connectors.embedded.kafka import EmbeddedKafka
from connectors.factory import open_connectors
from examples.towers.simulator import Fleet
from integration.support import Instance
from swimstream.config.loader import parse_config
from swimstream.service import Service
from tests.support.kafka import TANSU_SESSION


def app_config(bootstrap: str, instance: str, data: Path, args: argparse.Namespace) -> Any:
    return {
        "app": "towers",
        "broker": {
            "kind": "kafka",
            "bootstrap": bootstrap,
            "partitions": 4,
            "static_membership": False,
            "settings": dict(TANSU_SESSION),
        },
        "agents": {
            "device": {"class": "examples.towers.app:Device", "route": "/device/:id"},
            "tower": {"class": "examples.towers.app:Tower", "route": "/tower/:id"},
            "world": {"class": "examples.towers.app:World", "route": "/world"},
        },
        "sources": [{"topic": "readings", "route": "/device/{key}", "lane": "reading"}],
        "sinks": [
            {"from": "/tower/:id#summary", "topic": "tower-summaries"},
            {"publish": "alerts", "topic": "device-alerts"},
        ],
        "processing": {
            "guarantee": "exactly-once",
            "idle_timeout": f"{args.idle}s",
            "max_active_agents": args.max_active,
        },
        "mesh": {"listen": "127.0.0.1:0", "instance_id": instance},
        "store": {"path": str(data)},
        "web": {"listen": "127.0.0.1:0"},
    }


def overlay_state(service: Service) -> dict[str, float]:
    """The durable store's overlay: its passivated agents, how many checkpoints the
    oldest waits behind, and those whose shard this instance neither holds nor restores
    (a leak if they stay); the tracker's noted changes and its held shards."""
    durability = service.durability
    if durability is None or durability.store is None:
        return {}
    store, tracker = durability.store, durability.tracker
    overlay = store._overlay
    oldest = min((generation for generation, _ in overlay.values()), default=store.generation)
    mine: set[int] = set()
    if service.handover is not None:
        mine = service.handover.settled() | service.handover.restoring() | set(tracker.held)
    return {
        "overlay": len(overlay),
        "overlay_behind": store.generation - oldest,
        "overlay_not_mine": sum(1 for node in overlay if durability.shard_of(node) not in mine),
        "tracker": len(tracker),
        "held": len(tracker.held),
    }


def type_counts() -> dict[str, int]:
    """Objects the collector tracks, by type name."""
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] = counts.get(name, 0) + 1
    return counts


def print_type_growth(before: dict[str, int], after: dict[str, int], label: str) -> None:
    grown = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in after), reverse=True)
    print(f"\nobjects by type, {label} (growth, then count):", flush=True)
    for change, name in grown[:15]:
        print(f"  {change:+9d} {after[name]:>9d}  {name}")


class Restores(logging.Handler):
    """The primary's hand-over restores, from their log lines: how many, and the
    largest tail read so far (Python's arenas step up when a restore's peak passes the
    last one's)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.tails: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        records = getattr(record, "records", None)
        if isinstance(records, int) and hasattr(record, "shards"):
            self.tails.append(records)


class Stats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


async def produce(
    producer: Producer, by_hand: TowersByHand, fleet: Fleet, rate: int, stop: asyncio.Event
) -> int:
    sent = 0
    started = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate)
        for _ in range(min(due - sent, rate)):
            key, payload = fleet.reading()
            value = orjson.dumps(payload)
            while True:
                try:
                    producer.produce("readings", value, key.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            by_hand.handle(key.encode(), value)
            sent += 1
        producer.poll(0)
        by_hand.summaries.clear()  # (only the state is checked: no growth of the soak's own)
        by_hand.alerts.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)
    await asyncio.to_thread(producer.flush, 30)
    return sent


async def churn(instance: Instance, period: float, stop: asyncio.Event, stats: Stats) -> None:
    """Start the second instance, let it run, stop it, wait: until ``stop``."""
    while not stop.is_set():
        instance.start()
        stats.add("second_started")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period * 0.6)
        await asyncio.to_thread(instance.stop)
        stats.add("second_stopped")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period * 0.4)


def lane_choice(rng: random.Random, devices: int, towers: int) -> tuple[str, str]:
    r = rng.random()
    if r < 0.6:
        return f"/device/{rng.randrange(devices)}", rng.choice(["status", "history", "readings"])
    if r < 0.95:
        return f"/tower/t{rng.randrange(towers)}", rng.choice(["summary", "devices"])
    return "/world", rng.choice(["totals", "towers"])


async def multiplexed(
    session: aiohttp.ClientSession,
    url: str,
    rng: random.Random,
    devices: int,
    towers: int,
    stop: asyncio.Event,
    stats: Stats,
    lifetime: float | None,
    linked: dict[int, tuple[str, str]],
) -> None:
    """One multiplexed stream: link and unlink lanes until ``stop`` (or ``lifetime``)."""
    ended = time.monotonic() + lifetime if lifetime else None
    async with session.get(f"{url}/_streams") as response:
        if response.status != 200:
            stats.add(f"stream_refused_{response.status}")
            return
        stats.add("streams_opened")
        stream_id: str | None = None
        next_id = 0
        reader = response.content
        last_change = 0.0
        while not stop.is_set() and (ended is None or time.monotonic() < ended):
            try:
                line = await asyncio.wait_for(reader.readline(), 0.5)
            except TimeoutError:
                line = b""
            if line.startswith(b"data:") and stream_id is None:
                stream_id = orjson.loads(line[5:])["stream"]
            elif line.startswith(b"event: unlinked"):
                stats.add("unlinked_events")
            elif line.startswith(b"data:") and b'"link"' in line[:20]:
                stats.add("events")
                link = orjson.loads(line[5:]).get("link")
                if link not in linked:
                    stats.add("events_for_unknown_link")
            if stream_id is None or time.monotonic() - last_change < 2.0:
                continue
            last_change = time.monotonic()
            unlink = [k for k in list(linked) if rng.random() < 0.3]
            link = []
            for _ in range(rng.randrange(1, 4)):
                node, lane = lane_choice(rng, devices, towers)
                link.append({"id": next_id, "node": node, "lane": lane})
                next_id += 1
            async with session.post(
                f"{url}/_streams?stream={stream_id}",
                data=orjson.dumps({"link": link, "unlink": unlink}),
            ) as answer:
                if answer.status != 200:
                    stats.add(f"post_{answer.status}")
                    continue
                body = await answer.json()
            for k in unlink:
                linked.pop(k, None)
            for item in link:
                if item["id"] in body["linked"]:
                    linked[item["id"]] = (item["node"], item["lane"])
            stats.add("linked", len(body["linked"]))
            for refusal in body["refused"]:
                stats.add(f"refused_{refusal['status']}")
            # A link whose agent left the instance ends with `unlinked`; count the rest.
            # (Linked ids that got `unlinked` events stay in `linked`: harmless here.)


async def dashboard_clients(
    url: str, devices: int, towers: int, stop: asyncio.Event, stats: Stats
) -> dict[str, Any]:
    rng = random.Random(7)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    long_lived: list[dict[int, tuple[str, str]]] = [{}, {}]
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tasks = [
            asyncio.create_task(
                multiplexed(session, url, rng, devices, towers, stop, stats, None, links)
            )
            for links in long_lived
        ]
        while not stop.is_set():
            short = [
                asyncio.create_task(
                    multiplexed(
                        session, url, rng, devices, towers, stop, stats, rng.uniform(1, 6), {}
                    )
                )
                for _ in range(3)
            ]
            # and plain lane streams, dropped mid-way
            for _ in range(3):
                node, lane = lane_choice(rng, devices, towers)
                with contextlib.suppress(Exception):
                    async with session.get(f"{url}{node}?lane={lane}&stream=1") as r:
                        stats.add(f"lane_stream_{r.status}")
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(r.content.read(2000), 1.0)
            await asyncio.gather(*short, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                stats.add(f"long_lived_error_{type(result).__name__}")
    return {"long_lived_links": [len(x) for x in long_lived]}


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        text = await response.read()
        try:
            return response.status, orjson.loads(text)
        except orjson.JSONDecodeError:
            return response.status, text.decode(errors="replace")


async def check_state(url: str, by_hand: TowersByHand) -> list[str]:
    problems: list[str] = []
    sem = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as session:

        async def device(device_id: str) -> None:
            expected = by_hand.devices[device_id]
            deadline = time.monotonic() + 120  # (503 while a shard is still restored)
            while True:
                async with sem:
                    s1, status = await get_json(session, f"{url}/device/{device_id}?lane=status")
                    s2, count = await get_json(session, f"{url}/device/{device_id}?lane=readings")
                    s3, history = await get_json(session, f"{url}/device/{device_id}?lane=history")
                if 503 not in (s1, s2, s3) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            if (s1, s2, s3) != (200, 200, 200):
                problems.append(f"/device/{device_id}: statuses {s1} {s2} {s3}")
                return
            if status != expected.status:
                problems.append(f"/device/{device_id} status {status} != {expected.status}")
            if count != expected.readings:
                problems.append(f"/device/{device_id} readings {count} != {expected.readings}")
            want = {str(k): v for k, v in expected.history.items()}
            if history != want:
                problems.append(
                    f"/device/{device_id} history {len(history)} keys != {len(want)} keys"
                )

        await asyncio.gather(*(device(d) for d in by_hand.devices))
        summaries: dict[str, Any] = {}
        for tower_id, tower in sorted(by_hand.towers.items()):
            _, summary = await get_json(session, f"{url}/tower/{tower_id}?lane=summary")
            _, joined = await get_json(session, f"{url}/tower/{tower_id}?lane=devices")
            summaries[f"/tower/{tower_id}"] = summary
            mine = {
                k: v for k, v in (joined or {}).items() if v is not None and v["tower"] == tower_id
            }
            derived = {
                "devices": len(mine),
                "hot": sum(1 for v in mine.values() if v["temp"] > 90.0),
                "max_temp": max((v["temp"] for v in mine.values()), default=None),
            }
            if summary != derived:
                problems.append(f"/tower/{tower_id} summary {summary} != its join {derived}")
            stale = [
                k
                for k, v in (joined or {}).items()
                if v != by_hand.devices[k.rsplit("/", 1)[1]].status
            ]
            if stale:
                problems.append(
                    f"/tower/{tower_id} join holds {len(stale)} statuses that are not the "
                    f"device's (e.g. {stale[0]}: {joined[stale[0]]} vs "
                    f"{by_hand.devices[stale[0].rsplit('/', 1)[1]].status})"
                )
            if summary != tower.summary:
                problems.append(f"/tower/{tower_id} summary {summary} != by hand {tower.summary}")
        _, totals = await get_json(session, f"{url}/world?lane=totals")
        _, towers = await get_json(session, f"{url}/world?lane=towers")
        derived_totals = {
            "towers": len(towers or {}),
            "devices": sum(s["devices"] for s in (towers or {}).values()),
            "hot": sum(s["hot"] for s in (towers or {}).values()),
        }
        if totals != derived_totals:
            problems.append(f"/world totals {totals} != its join {derived_totals}")
        for uri, summary in (towers or {}).items():
            if summary != summaries.get(uri):
                problems.append(f"/world join {uri}: {summary} != tower's {summaries.get(uri)}")
        if totals != by_hand.totals:
            problems.append(f"/world totals {totals} != by hand {by_hand.totals}")
    return problems


async def soak(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="swimstream-churn-"))
    kafka = EmbeddedKafka(work_dir=work / "tansu").start()
    try:
        return await _soak(args, work, kafka)
    finally:
        kafka.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


async def _soak(args: argparse.Namespace, work: Path, kafka: EmbeddedKafka) -> int:
    bootstrap = kafka.bootstrap
    service = Service(
        parse_config(app_config(bootstrap, "towers-a", work / "a", args), {}), open_connectors
    )
    await service.start()
    assert service.web is not None and service.plane is not None
    url = service.web.url
    print(f"primary {url}  work {work}", flush=True)
    second = Instance(app_config(bootstrap, "towers-b", work / "b", args), work, "second")
    stats = Stats()
    fleet = Fleet(args.devices)
    by_hand = TowersByHand()
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20}
    )
    stop_sim, stop_churn, stop_web = asyncio.Event(), asyncio.Event(), asyncio.Event()
    simulator = asyncio.create_task(produce(producer, by_hand, fleet, args.rate, stop_sim))
    churner = asyncio.create_task(
        churn(second, args.churn, stop_churn, stats) if args.churn > 0 else stop_churn.wait()
    )
    web = asyncio.create_task(dashboard_clients(url, args.devices, fleet.towers, stop_web, stats))
    restores = Restores()
    handover_log = logging.getLogger("swimstream.handover")
    handover_log.addHandler(restores)
    handover_log.setLevel(logging.INFO)
    process = psutil.Process()
    process.cpu_percent()
    samples: list[dict[str, float]] = []
    containers: list[dict[str, int]] = []
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:

        async def sample(phase: str) -> None:
            gc.collect()
            _, text = await get_json(session, f"{url}/metrics")
            metrics = _parse_metrics(str(text))
            plane = service.plane
            assert plane is not None
            row = {
                "t": round(time.monotonic() - started),
                "rss_mb": process.memory_info().rss / 2**20,
                "cpu_pct": process.cpu_percent(),
                "fds": process.num_fds(),
                "tasks": len(asyncio.all_tasks()),
                "objects": len(gc.get_objects()),
                "agents": plane.active_agents,
                "links": len(plane.links),
                "streams_open": metrics.get("swimstream_web_streams_open", 0.0),
                "mailbox": metrics.get("swimstream_mailbox_depth", 0.0),
                "lag": metrics.get("swimstream_consumer_lag", 0.0),
                "records_in": metrics.get("swimstream_records_in_total", 0.0),
                "timers": len(plane.timers) if hasattr(plane.timers, "__len__") else 0,
            }
            with contextlib.suppress(OSError, AttributeError):  # (glibc only)
                row["malloc_used_mb"], row["malloc_free_mb"] = malloc_totals()
            row["python_arenas"], row["python_used_mb"] = python_allocator()  # (1 MiB each)
            row.update(overlay_state(service))
            row["restores"] = len(restores.tails)
            row["largest_tail"] = max(restores.tails, default=0)
            if args.tracemalloc:
                row["traced_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
            samples.append(row)
            containers.append(container_sizes(service))
            print(
                phase,
                " ".join(f"{k}={v:.1f}" for k, v in row.items()),
                stats.counts,
                flush=True,
            )

        snapshots: list[tracemalloc.Snapshot] = []
        types_at_warmup: dict[str, int] = {}
        while time.monotonic() - started < args.duration:
            await asyncio.sleep(args.every)
            await sample("load")
            if not types_at_warmup and time.monotonic() - started >= args.warmup:
                types_at_warmup = type_counts()
            if args.tracemalloc and not snapshots and time.monotonic() - started >= args.warmup:
                snapshots.append(tracemalloc.take_snapshot())
        if types_at_warmup:
            print_type_growth(types_at_warmup, type_counts(), "end of load against warm-up")
        if snapshots:
            gc.collect()
            diff = tracemalloc.take_snapshot().compare_to(snapshots[0], "traceback")
            print("\ntracemalloc: top growth since the end of warm-up", flush=True)
            for stat in diff[:12]:
                print(f"  {stat.size_diff / 2**20:+8.1f} MiB {stat.count_diff:+9d} blocks")
                for line in stat.traceback.format()[-12:]:
                    print(f"      {line}")
        stop_sim.set()
        sent = await simulator
        stop_churn.set()
        await churner
        print(f"produced {sent}; second instance stopped", flush=True)
        # settle: the primary holds every partition and has read everything
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ready, _ = await get_json(session, f"{url}/readyz")
            _, text = await get_json(session, f"{url}/metrics")
            metrics = _parse_metrics(str(text))
            if (
                metrics.get("swimstream_consumer_lag", 1) == 0
                and metrics.get("swimstream_mailbox_depth", 1) == 0
                and ready == 200
            ):
                break
            await asyncio.sleep(2)
        await asyncio.sleep(10)
        await sample("settled")
        problems = await check_state(url, by_hand)
        print(f"\nstate check: {len(problems)} problems", flush=True)
        for p in problems[:40]:
            print("  ", p)
        stop_web.set()
        web_result = await web
        print("clients:", web_result, stats.counts, flush=True)
        await asyncio.sleep(5)
        await sample("clients-gone")
        await asyncio.sleep(args.idle + 10)
        await sample("idle")
        if types_at_warmup:
            print_type_growth(types_at_warmup, type_counts(), "idle against warm-up")
    plane = service.plane
    assert plane is not None
    print(f"links left: {len(plane.links)}; agents in memory: {plane.active_agents}")
    rss = psutil.Process().memory_info().rss / 2**20
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # what of it is freed memory malloc keeps
    trimmed = psutil.Process().memory_info().rss / 2**20
    print(f"rss {rss:.1f} MB; after malloc_trim(0) {trimmed:.1f} MB")
    report(samples, containers, args.warmup, args.duration)
    await service.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=720.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds before slopes")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--churn", type=float, default=60.0, help="second instance period, 0: none")
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=2000, help="readings per second")
    parser.add_argument("--max-active", type=int, default=1500, help="max_active_agents")
    parser.add_argument("--idle", type=float, default=20.0, help="idle_timeout, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--tracemalloc", action="store_true", help="diff allocation sites")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(12)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    raise SystemExit(main())
