"""The e2e bench's section of BENCHMARKS.md: the table, what it measured, the verdict."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.e2e_workload import HOT_TEMPERATURE, KEYS, PARTITIONS
from bench.peers.harness import Result, Workload
from bench.report import table
from connectors.embedded import FAST_CONSUMER_SETTINGS

RAW_TARGET_SHARE = 0.30
SWIMSTREAM_TARGET = 150_000


def rows_of(results: Sequence[Result], workload: Workload) -> list[list[str]]:
    raw = next((r for r in results if r.name == "raw-orjson" and not r.failure), None)
    rows = []
    for r in results:
        if r.failure:
            failed = [r.name, r.client, f"failed: {r.failure}"]
            rows.append(failed + [""] * (len(HEADERS) - 4) + [EXPECTED.get(r.name, "")])
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
                f"{r.busy_elsewhere:.1f}",
                EXPECTED.get(r.name, ""),
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
    "cores busy elsewhere",
    "expected events/s",
]
EXPECTED = {
    "raw-orjson": "≈ 480,000",
    "raw-json": "≈ 200,000",
    "swimstream": f"≥ {SWIMSTREAM_TARGET:,} and ≥ {RAW_TARGET_SHARE:.0%} of raw",
    "faust": "2,000 to 5,000",
    "quix": "≈ 35,000",
    "bytewax": "≈ 90,000",
}
"""What the issue expected on this machine (swimstream's are targets)."""


def machine_sentence(results: Sequence[Result]) -> str:
    """How busy the machine was beside the contenders, and at which priority they ran."""
    busy = [r.busy_elsewhere for r in results if not r.failure]
    text = ""
    if busy:
        text = (
            f" Outside the contender, between {min(busy):.1f} and {max(busy):.1f} of the"
            f" {os.cpu_count()} cores were busy while the rows ran."
        )
    niceness = os.nice(0)
    if niceness:
        text += f" The run had niceness {niceness}, as the machine was shared with other work."
    return text


def summaries_sentence(results: Sequence[Result], coalesce: str) -> str:
    ours = next((r for r in results if r.name == "swimstream" and r.summaries is not None), None)
    if ours is None:
        return ""
    return (
        f" swimstream also produced {ours.summaries:,} tower summaries (its lane sink,"
        f" coalesced every {coalesce})."
    )


def misses_target(result: Result, results: Sequence[Result]) -> bool:
    """Whether a swimstream row is below ``SWIMSTREAM_TARGET`` or the share of the raw limit."""
    raw = next((r for r in results if r.name == "raw-orjson" and not r.failure), None)
    floor = max(SWIMSTREAM_TARGET, RAW_TARGET_SHARE * raw.steady_rate if raw else 0.0)
    return result.steady_rate < floor


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


def body_of(
    results: Sequence[Result],
    workload: Workload,
    elapsed: float,
    notes: str,
    faust_settings: Mapping[str, object],
    coalesce: str,
) -> str:
    """The section's text; ``faust_settings`` and ``coalesce`` are what the run used."""
    settings = ", ".join(f"`{k}={v}`" for k, v in FAST_CONSUMER_SETTINGS.items())
    faust = ", ".join(f"`{k}={v}`" for k, v in faust_settings.items())
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
        " *cores busy elsewhere* is the machine's CPU time outside the child while it ran,"
        " per second: the broker (Tansu), the harness, and whatever else shares the machine"
        f" ({os.cpu_count()} cores; a figure well above the raw rows' means the row was"
        " measured on a busy machine)."
        f"{summaries_sentence(results, coalesce)} The whole run took {elapsed:.0f} s."
        f"{machine_sentence(results)}\n\n"
        f"Settings: every librdkafka consumer (raw, swimstream, Quix, Bytewax) gets {settings}"
        " (FAST_CONSUMER_SETTINGS in `connectors/embedded/kafka.py`, which says why each"
        " matters on Tansu); swimstream runs with"
        " its own producer defaults, and, except in the *swimstream-durable* row,"
        " `store: {durable: false}` with `processing: at-least-once` (offsets committed once"
        " each record's effects are delivered); *swimstream-durable* runs the service's"
        " defaults, durable state with `processing: exactly-once`. faust's client is"
        f" aiokafka (pure Python) with {faust}. Per-key state is in memory in every row but"
        " *swimstream-durable*: faust in a dict (a faust Table would add"
        " a changelog record per reading), Quix in its MemoryStore without changelog topics,"
        " Bytewax in `stateful_map` without a recovery store. Bytewax assigns partitions"
        " itself (no consumer group) and runs one worker. The raw loop produces no alerts."
        " The towers app does more than the peers: each reading also updates its tower's"
        " join lane and recomputes the tower summary (set when a count or the hottest"
        " temperature moves), whose lane sink produces each tower's latest summary every"
        f" {coalesce} (`coalesce: {coalesce}`, as Kafka Streams' record cache does for a"
        " table; without it, one record per change of a summary);"
        " *swimstream-devices* runs the same service on the peers' work only (per-key"
        " count and last reading, alerts), for a like-for-like comparison."
        f"\n\n{targets_line(results)}"
    )
    if notes:
        text += f"\n\n{notes.strip()}"
    return text


FINDINGS = (Path(__file__).resolve().parent / "e2e_findings.md").read_text()
"""What the profile and the rows mean: the findings of the run this text was written for
(kept beside this script, in ``e2e_findings.md``)."""
