"""Soak the towers demo in-process and report what grows.

Runs what ``swimstream demo`` runs (an embedded Kafka, the simulated fleet, the towers
app with durable state and its dashboard) in this process for ``--duration`` seconds,
and every ``--every`` seconds samples: resident memory, threads, open fds, asyncio
tasks and scheduled callbacks, live Python objects, the SQLite store and its WAL, the
metrics registry's series, a few ``/metrics`` values, and the length of every container
reachable (a few attributes deep) from the Service: caches, registries, link tables,
timer wheels, SSE state. Meanwhile it exercises the web side with ``curl``: lane GETs,
command POSTs, ``/metrics``, and short SSE lane streams that it opens and closes.

After the run it prints a table of the samples and, for each quantity and each
container, its value at the end of the warm-up and at the end, and the slope after
warm-up (per minute), the largest first: a steady level is fine, a slope is a finding.
``--quiet S`` keeps the service running S more seconds after the simulator stops, to
check it goes back to a quiet state (the samples continue; CPU is reported too).
``--tracemalloc`` also diffs tracemalloc snapshots (top allocation sites) between the
end of the warm-up and the end (slower: every allocation is traced).

Run (from a checkout; the machine's other work shares its cores, so one soak at a time):
``PYTHONPATH=. .venv/bin/python bench/soak.py --duration 1200 --rate 2000``.
Not run by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from swimstream.cli.demo import demo_config_path
from swimstream.config import load_config
from swimstream.service import Service

WALK_DEPTH = 5
"""Attribute hops from the Service to the containers whose length is sampled."""

Sample = dict[str, float]


def _children(obj: object) -> Iterator[tuple[str, object]]:
    """Attributes of ``obj`` (``__dict__`` and ``__slots__``)."""
    with contextlib.suppress(TypeError):
        yield from vars(obj).items()
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            with contextlib.suppress(AttributeError):
                yield name, getattr(obj, name)


def _ours(obj: object) -> bool:
    module = type(obj).__module__ or ""
    return module.split(".")[0] in ("swimstream", "connectors", "examples", "aiohttp")


def container_sizes(root: object) -> dict[str, int]:
    """``len()`` of each container reachable from ``root`` by attributes, by path.

    A container is walked into when its values are ours (a dict of agents, say) only
    for the first few of them, so that per-agent structures are sampled too (by the
    path of the first of them): enough to see a per-agent table that grows.
    """
    sizes: dict[str, int] = {}
    seen: set[int] = set()
    stack: list[tuple[str, object, int]] = [("service", root, 0)]
    while stack:
        path, obj, depth = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (dict, list, set, frozenset, tuple)) or type(obj).__name__ in (
            "deque",
            "OrderedDict",
            "defaultdict",
            "WeakValueDictionary",
            "WeakSet",
        ):
            with contextlib.suppress(TypeError):
                sizes[path] = len(obj)  # type: ignore[arg-type]
            values: Any = obj.values() if isinstance(obj, dict) else obj
            if depth < WALK_DEPTH and not isinstance(obj, (str, bytes)):
                with contextlib.suppress(Exception):
                    for i, value in enumerate(values):
                        if i >= 2:
                            break
                        if _ours(value) or isinstance(value, (dict, list, set)):
                            stack.append((f"{path}[{i}]", value, depth + 1))
            continue
        if depth >= WALK_DEPTH or not _ours(obj):
            continue
        for name, value in _children(obj):
            stack.append((f"{path}.{name}", value, depth + 1))
    return sizes


def _store_bytes(data: Path) -> tuple[float, float]:
    """(database bytes, WAL bytes) under ``data``."""
    db = wal = 0
    for file in data.rglob("*"):
        if file.is_file():
            if file.name.endswith("-wal"):
                wal += file.stat().st_size
            elif file.name.endswith((".db", ".sqlite", ".sqlite3")):
                db += file.stat().st_size
    return float(db), float(wal)


METRIC_LINE = re.compile(r"^(swimstream_[a-z_]+)(\{[^}]*\})? ([-0-9.e+]+)$")


def _parse_metrics(text: str) -> dict[str, float]:
    """Sum of each ``/metrics`` series over its labels."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if match:
            name = match.group(1)
            totals[name] = totals.get(name, 0.0) + float(match.group(3))
    return totals


async def _curl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "curl", "-s", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await process.communicate()
    return out.decode(errors="replace")


async def exercise_web(url: str, devices: int, stop: asyncio.Event) -> int:
    """GETs, POSTs and short SSE streams until ``stop``; returns the requests sent."""
    sent = 0
    n = 0
    while not stop.is_set():
        device = n % devices
        tower = n % max(4, devices // 250)
        await asyncio.gather(
            _curl(f"{url}/device/{device}?lane=status"),
            _curl(f"{url}/device/{device}?lane=history"),
            _curl(f"{url}/tower/t{tower}?lane=summary"),
            _curl("-X", "POST", "-d", "1", f"{url}/nosuch/{n}?lane=x"),  # a 404, new URI
            _curl(f"{url}/device/{devices + n}?lane=status"),  # an agent never fed
            _curl("-m", "3", f"{url}/tower/t{tower}?lane=summary&stream=1"),
            _curl("-m", "2", "-H", "Accept: text/event-stream", f"{url}/world?lane=towers"),
            _curl("-m", "2", f"{url}/device/{device}?lane=history&stream=1"),
        )
        sent += 8
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return sent


async def soak(args: argparse.Namespace) -> int:
    from connectors.factory import open_connectors
    from examples.towers.simulator import Fleet, simulate

    data = Path(tempfile.mkdtemp(prefix="swimstream-soak-"))
    env = {
        "SWIMSTREAM_BROKER": "embedded",
        "SWIMSTREAM_WEB": args.web,
        "SWIMSTREAM_MESH": "127.0.0.1:0",
        "SWIMSTREAM_DATA": str(data),
    }
    service = Service(load_config(demo_config_path(), env), open_connectors)
    await service.start()
    assert service.web is not None and service.plane is not None
    url = service.web.url
    print(f"dashboard {url}  data {data}", flush=True)
    sink = service.clients["kafka"].sink
    stop_sim, stop_web = asyncio.Event(), asyncio.Event()

    def produce(topic: str, key: bytes, value: bytes) -> None:
        sink.produce(topic, key, value)

    fleet = Fleet(args.devices)
    simulator = asyncio.create_task(simulate(produce, "readings", fleet, args.rate, stop_sim))
    web = asyncio.create_task(exercise_web(url, args.devices, stop_web))
    process = psutil.Process()
    process.cpu_percent()
    loop = asyncio.get_running_loop()
    samples: list[Sample] = []
    containers: list[dict[str, int]] = []
    snapshots: list[tracemalloc.Snapshot] = []
    started = time.monotonic()
    end = started + args.duration + args.quiet
    while time.monotonic() < end:
        await asyncio.sleep(args.every)
        elapsed = time.monotonic() - started
        if elapsed >= args.duration and not stop_sim.is_set():
            stop_sim.set()
            stop_web.set()
        gc.collect()
        text = await _curl(f"{url}/metrics")
        metrics = _parse_metrics(text)
        db, wal = _store_bytes(data)
        scheduled = getattr(loop, "_scheduled", [])
        sample: Sample = {
            "t": round(elapsed),
            "rss_mb": process.memory_info().rss / 2**20,
            "cpu_pct": process.cpu_percent(),
            "threads": process.num_threads(),
            "fds": process.num_fds(),
            "tasks": len(asyncio.all_tasks()),
            "timers": len(scheduled),
            "objects": len(gc.get_objects()),
            "agents": service.plane.active_agents,
            "series": sum(1 for line in text.splitlines() if line and line[0] != "#"),
            "db_mb": db / 2**20,
            "wal_mb": wal / 2**20,
            "records_in": metrics.get("swimstream_records_in_total", 0.0),
            "lag": metrics.get("swimstream_consumer_lag", 0.0),
            "mailbox": metrics.get("swimstream_mailbox_depth", 0.0),
            "checkpoints": metrics.get("swimstream_checkpoints_total", 0.0),
            "dead": metrics.get("swimstream_dead_letters_total", 0.0),
        }
        if args.tracemalloc:
            sample["traced_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
        samples.append(sample)
        containers.append(container_sizes(service))
        if args.tracemalloc and (
            (len(snapshots) == 0 and elapsed >= args.warmup)
            or (len(snapshots) == 1 and elapsed >= args.duration)
        ):
            snapshots.append(tracemalloc.take_snapshot())
        print(" ".join(f"{k}={v:.1f}" for k, v in sample.items()), flush=True)
    stop_sim.set()
    stop_web.set()
    await simulator
    requests = await web
    await service.close()
    shutil.rmtree(data, ignore_errors=True)
    print(f"\nweb requests sent: {requests}")
    report(samples, containers, args.warmup, args.duration)
    if len(snapshots) == 2:
        print("\ntracemalloc: top growth between the end of warm-up and the end")
        for stat in snapshots[1].compare_to(snapshots[0], "traceback")[:15]:
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+8d} objects")
            for line in stat.traceback.format()[-6:]:
                print(f"      {line}")
    return 0


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if var == 0 else 60 * sum((t - mx) * (v - my) for t, v in points) / var


def report(
    samples: list[Sample], containers: list[dict[str, int]], warmup: float, duration: float
) -> None:
    """Print start/end/slope per quantity and the containers that grew after warm-up."""
    after = [i for i, s in enumerate(samples) if warmup <= s["t"] <= duration]
    if not after:
        print("no samples after warm-up")
        return
    first, last = after[0], after[-1]
    print(f"\nafter warm-up (t={samples[first]['t']:.0f}..{samples[last]['t']:.0f} s)")
    print(f"{'quantity':<16}{'start':>12}{'end':>12}{'slope/min':>12}")
    for key in samples[0]:
        if key == "t":
            continue
        points = [(samples[i]["t"], samples[i].get(key, 0.0)) for i in after]
        print(
            f"{key:<16}{samples[first].get(key, 0):>12.1f}{samples[last].get(key, 0):>12.1f}"
            f"{_slope(points):>12.2f}"
        )
    grown = []
    for path in containers[last]:
        points = [(samples[i]["t"], float(containers[i].get(path, 0))) for i in after]
        start, end = containers[first].get(path, 0), containers[last][path]
        if end > start:
            grown.append((_slope(points), path, start, end))
    print("\ncontainers that grew after warm-up (slope per minute, start, end):")
    for slope, path, start, end in sorted(grown, reverse=True)[:40]:
        print(f"  {slope:>10.2f}  {start:>8} -> {end:<8} {path}")
    quiet = [s for s in samples if s["t"] > duration]
    if quiet:
        print("\nafter the simulator stopped:")
        for s in quiet:
            print(
                f"  t={s['t']:.0f} rss={s['rss_mb']:.1f} MB cpu={s['cpu_pct']:.1f}% "
                f"objects={s['objects']:.0f} tasks={s['tasks']:.0f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=1200.0, help="seconds of load")
    parser.add_argument("--quiet", type=float, default=120.0, help="seconds after the load")
    parser.add_argument("--warmup", type=float, default=240.0, help="seconds before slopes")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=2000, help="readings per second")
    parser.add_argument("--web", default="127.0.0.1:9031", help="dashboard address")
    parser.add_argument("--tracemalloc", action="store_true", help="diff allocation sites")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(8)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    raise SystemExit(main())
