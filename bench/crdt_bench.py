"""How fast the CRDT core applies ops: the ceiling of every lane update and replica.

Ops are made up front by several writer replicas (so stamps interleave as they would
on a mesh), then applied to a fresh replica under a timer; only ``apply`` is measured.
Run: ``.venv/bin/python bench/crdt_bench.py`` (``make bench`` runs every benchmark).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import progress, table, write_section
from swimstream.crdt import LWWMap, LWWRegister, PNCounter, decode, encode

WRITERS = 4
REPEATS = 5


def best_rate(ops: Sequence[Any], make: Callable[[], Any]) -> tuple[float, float]:
    """Ops per second applying ``ops`` to a fresh replica (best of REPEATS runs), and
    the fraction of them that changed the replica's visible state."""
    best = 0.0
    changed = 0
    for _ in range(REPEATS):
        replica = make()
        apply = replica.apply
        gc.disable()
        start = time.perf_counter()
        changed = sum(1 for op in ops if apply(op))
        elapsed = time.perf_counter() - start
        gc.enable()
        best = max(best, len(ops) / elapsed)
    return best, changed / len(ops)


def round_robin(writers: Sequence[Any], count: int, write: Callable[[Any, int], Any]) -> list[Any]:
    """``count`` ops, the writers taking turns, so stamps interleave as on a live mesh."""
    return [write(writers[n % len(writers)], n) for n in range(count)]


def row(name: str, result: tuple[float, float], target: int | None = None) -> list[str]:
    rate, changed = result
    verdict = "" if target is None else ("pass" if rate >= target else "BELOW")
    return [
        name,
        f"{rate:,.0f}",
        f"{changed:.0%}",
        "" if target is None else f"≥ {target:,}",
        verdict,
    ]


def main() -> None:
    count = 1_000_000
    rows: list[list[str]] = []

    progress(f"register: making {count:,} sets from {WRITERS} writers")
    writers = [LWWRegister(f"w{i}") for i in range(WRITERS)]
    ops = round_robin(writers, count, lambda w, n: w.set(n))
    rows.append(
        row("LWWRegister.apply(set)", best_rate(ops, lambda: LWWRegister("bench")), 500_000)
    )

    keys = 10_000
    progress(f"map: making {count:,} puts over {keys:,} keys")
    maps = [LWWMap(f"w{i}") for i in range(WRITERS)]
    ops = round_robin(maps, count, lambda m, n: m.put(f"key-{n % keys}", n))
    puts = ops
    rows.append(row("LWWMap.apply(put)", best_rate(ops, lambda: LWWMap("bench")), 300_000))

    progress("map: removes of present keys")
    removes = round_robin(maps, keys, lambda m, n: m.remove(f"key-{n}"))
    filled = LWWMap("bench")
    for op in ops:
        filled.apply(op)
    snapshot = filled.snapshot()
    rows.append(
        row(
            "LWWMap.apply(remove)",
            best_rate(removes, lambda: LWWMap.from_snapshot(snapshot, "bench")),
        )
    )

    progress(f"counter: making {count:,} adds")
    counters = [PNCounter(f"w{i}") for i in range(WRITERS)]
    ops = round_robin(counters, count, lambda c, n: c.add(1 if n % 3 else -1))
    rows.append(row("PNCounter.apply(add)", best_rate(ops, lambda: PNCounter("bench"))))

    progress("local writes (make the op and apply it here)")
    register = LWWRegister("local")
    start = time.perf_counter()
    for n in range(count):
        register.set(n)
    rows.append(
        ["LWWRegister.set (local)", f"{count / (time.perf_counter() - start):,.0f}", "100%", "", ""]
    )

    progress("codec: encode and decode map puts")
    sample = puts[:200_000]
    start = time.perf_counter()
    encoded = [encode(op) for op in sample]
    encode_rate = len(sample) / (time.perf_counter() - start)
    start = time.perf_counter()
    for blob in encoded:
        decode(blob)
    decode_rate = len(sample) / (time.perf_counter() - start)
    rows.append(["encode(MapPut)", f"{encode_rate:,.0f}", "", "", ""])
    rows.append(["decode(MapPut)", f"{decode_rate:,.0f}", "", "", ""])

    body = table(["operation", "ops/s (best of 5)", "changed state", "target", ""], rows)
    body += (
        f"\n\nOps are made by {WRITERS} writer replicas taking turns (so their stamps interleave as"
        " on a live mesh), then applied to a fresh replica; only `apply` is timed, with the"
        " garbage collector paused. *changed state* is the share of ops that won and changed"
        " the visible state (the rest lost to a newer stamp: the cheap path). Pure Python."
    )
    write_section("crdt", "CRDT core", "make bench  (python bench/crdt_bench.py)", body)
    print(body)


if __name__ == "__main__":
    main()
