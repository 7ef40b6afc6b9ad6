"""Instructions per record on the pipeline bench's path, counted by callgrind.

Run: ``.venv/bin/python bench/instructions_bench.py`` (``make bench`` runs every
benchmark; needs Valgrind: ``apt-get install valgrind``). Options: ``--records N``
(default 40,000) measured after ``--warmup N`` (default 60,000, a multiple of 500),
``--no-write`` to leave BENCHMARKS.md alone.

Timings on this shared two-core machine swing by a third from one hour to the next,
which hides any change worth less than that. The number of machine instructions the
interpreter executes for the same records is nearly the same from run to run (hash seeds
fixed; within about half a percent, as the hybrid clock reads the wall less often when
more timestamps fall in one millisecond), so a change of one or two percent to the
per-record path shows here first; the timed benches say what it is worth in records per
second. Each case runs the pipeline bench's round in a child process under ``valgrind
--tool=callgrind`` with counting switched on (``callgrind_control``) only while the
measured records go through: after the warm-up, every agent exists and every link is
open, so the figure is the steady state. The towers case produces a summary record per
change: coalescing every 100 ms would make the count depend on how fast the machine
(slowed some fifty times under Valgrind) runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline_bench import BATCH, CASES, CpuMeter, memory_records, one_round
from bench.report import progress, table, write_section
from swimstream.runtime import tune_gc

MEASURED = {name: case for name, case in CASES.items() if case[1] != "coalesce"}
"""The pipeline bench's cases that run the same instructions however fast the machine is."""

STEADY_CASE = "towers app, a summary record per change"
STEADY_WARMUP = 510_000
STEADY_ROW = "towers app once every history is full (each reading evicts one)"
"""The towers case again after 510,000 readings: by 500,000 each of the 10,000 devices
holds the 50 readings its history keeps, and from then on each reading evicts the oldest,
as in any run of the service longer than a few seconds at the e2e bench's pace (whose own
500,000 readings fill the histories but evict nothing). About a minute more."""


class CallgrindMeter(CpuMeter):
    """Switches callgrind's counting on and off for this process."""

    def start(self) -> None:
        _callgrind("on")

    def stop(self) -> float:
        _callgrind("off")
        return 0.0


def _callgrind(state: str) -> None:
    subprocess.run(
        ["callgrind_control", "--instr=" + state, str(os.getpid())],
        check=True,
        capture_output=True,
    )


def child(name: str, records: int, warmup: int) -> None:
    """Run one case with callgrind counting only the measured records."""
    agents, summaries = MEASURED[name]
    tune_gc()  # as the service does
    batch = memory_records(warmup + records)
    asyncio.run(one_round(agents, summaries, batch, warmup=warmup, meter=CallgrindMeter()))


def count(name: str, records: int, warmup: int) -> int:
    """Instructions the interpreter executed for ``records`` records of case ``name``."""
    arguments = ["--child", name, "--records", str(records), "--warmup", str(warmup)]
    return under_callgrind(__file__, arguments, name)[0]


def under_callgrind(script: str, arguments: list[str], what: str) -> tuple[int, str]:
    """Run ``script`` under callgrind, counting only while it switches counting on
    (:class:`CallgrindMeter`), hash seeds fixed: (instructions counted, its output)."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            script,
            *arguments,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{what}: callgrind run failed:\n{done.stderr[-2000:]}")
        for line in out.read_text().splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1]), done.stdout
    raise RuntimeError(f"{what}: callgrind wrote no totals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--warmup", type=int, default=60_000)
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warmup % BATCH:
        parser.error(f"--warmup must be a multiple of {BATCH}")
    if args.child:
        child(args.child, args.records, args.warmup)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        progress("valgrind is not installed (apt-get install valgrind): nothing measured")
        return
    rows = []
    for number, name in enumerate(MEASURED, 1):
        progress(f"case {number}/{len(MEASURED)}: {name} (under callgrind, about a minute)")
        started = time.monotonic()
        per_record = count(name, args.records, args.warmup) / args.records
        seconds = time.monotonic() - started
        progress(f"{name}: {per_record:,.0f} instructions a record ({seconds:.0f} s)")
        rows.append([name, f"{per_record:,.0f}"])
    progress(f"case {len(MEASURED) + 1}: {STEADY_ROW} (under callgrind, about a minute)")
    steady = count(STEADY_CASE, args.records, max(args.warmup, STEADY_WARMUP)) / args.records
    progress(f"{STEADY_ROW}: {steady:,.0f} instructions a record")
    rows.append([STEADY_ROW, f"{steady:,.0f}"])
    body = (
        table(["pipeline, no broker", "instructions per record"], rows)
        + f"\n\nThe pipeline bench's path (see above), counted by Valgrind's callgrind over"
        f" {args.records:,} readings after {args.warmup:,} of warm-up (by 60,000 every"
        " agent is active and every link open), hash seeds fixed: the same code gives the"
        " same count to"
        " within about a tenth of a percent (the plane's hybrid clock reads the wall once a"
        " batch, not at each write as it did, when its shortcut within a millisecond made"
        " half a percent; what still goes by the clock, the housekeeping once a second,"
        " runs more or less often as the machine runs faster or slower), where the timed"
        " benches on this machine vary by a third. Compare two commits with it; the timed"
        " rows say what the difference is worth. The towers case produces a summary record"
        " per change (coalescing by time would count differently under Valgrind's"
        " slowdown); the by-hand row is the same logic without the framework (see the"
        " pipeline section). The last row counts the towers case after"
        f" {STEADY_WARMUP:,} readings of warm-up instead: every device's history is full,"
        " and each reading evicts its oldest entry, as it does in any longer run."
    )
    print(body)
    if args.records == 40_000 and args.warmup == 60_000 and not args.no_write:
        write_section(
            "instructions",
            "Instructions per record (deterministic, for comparing commits)",
            "make bench  (python bench/instructions_bench.py)",
            body,
        )


if __name__ == "__main__":
    main()
