"""What every contender of the end-to-end benchmark shares: its arguments and its report.

Each contender is a child process of ``bench/e2e_bench.py``, started cold, that reads the
input topic from the beginning in a fresh consumer group. It tells the parent how it is
doing by printing one JSON object per line on stdout (nothing else goes there)::

    {"event": "first", "t": <wall clock>}                       the first record is in
    {"event": "progress", "t": <wall clock>, "records": n}      every tenth of the way
    {"event": "done", "t": <wall clock>, "records": N, ...}     all N records are processed

The parent measures CPU and memory itself; the child only says when it got there. This
module imports nothing beyond the standard library, as it runs in every peer's own
virtual environment.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

HOT_TEMPERATURE = 90.0
"""Readings above this produce an alert (as in examples/towers)."""


def parse_args(description: str) -> argparse.Namespace:
    """The command line every contender takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--topic", required=True, help="the input topic")
    parser.add_argument("--group", required=True, help="a consumer group nobody used before")
    parser.add_argument("--alerts-topic", required=True, help="where alert records go")
    parser.add_argument("--records", type=int, required=True, help="records in the topic")
    parser.add_argument(
        "--settings", default="{}", help="client settings as a JSON object (per client kind)"
    )
    parser.add_argument("--json", choices=["orjson", "json"], default="orjson")
    return parser.parse_args()


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--settings`` JSON object."""
    settings = json.loads(args.settings)
    if not isinstance(settings, dict):
        raise SystemExit("--settings must be a JSON object")
    return settings


def emit(event: str, **fields: Any) -> None:
    """One report line for the parent."""
    line = json.dumps({"event": event, "t": time.time(), **fields}) + "\n"
    # Straight to file descriptor 1: frameworks may replace sys.stdout (faust logs it).
    os.write(1, line.encode())


class Tally:
    """Counts processed records and reports the first one and the last one."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.records = 0
        self.alerts = 0
        self.finished = False
        self._next_mark = max(total // 10, 1)

    def add(self, count: int = 1) -> bool:
        """Count ``count`` more processed records; True once all of them are in."""
        if self.records == 0 and count > 0:
            emit("first")
        self.records += count
        if self.records >= self._next_mark and self.records < self.total:
            emit("progress", records=self.records)
            self._next_mark += max(self.total // 10, 1)
        if not self.finished and self.records >= self.total:
            self.finished = True
            emit("done", records=self.records, alerts=self.alerts)
        return self.finished
