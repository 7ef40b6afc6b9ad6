"""Writes one benchmark's results into its own section of BENCHMARKS.md.

Each benchmark owns a section between ``<!-- bench:NAME -->`` markers and rewrites only
that, so benchmarks run separately (and on different days) share one file. Every
section records the command, the machine and the date, as the figures mean nothing
without them.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Written by the scripts in `bench/` (`make bench` runs them all). Each section says\n"
    "the command, the machine and the date it was measured on. Targets come from the\n"
    "issues; a figure below its target is a finding, explained under the table.\n"
)


def machine() -> str:
    """One line naming the CPU, cores, memory and Python that produced the figures."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError):
        memory = ""
    python = f"Python {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} cores{memory}, {python}, {platform.system()}"


def progress(message: str) -> None:
    """A progress line on stderr, so a user waiting on a long run sees it move."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def write_section(name: str, title: str, command: str, body: str) -> Path:
    """Replace (or append) the section ``name`` of BENCHMARKS.md."""
    today = datetime.date.today().isoformat()
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"- command: `{command}`\n- machine: {machine()}\n- date: {today}\n\n"
        f"{body.strip()}\n<!-- /bench:{name} -->"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{section}\n"
    )
    BENCHMARKS_MD.write_text(text if text.endswith("\n") else text + "\n")
    progress(f"wrote the {name} section of {BENCHMARKS_MD}")
    return BENCHMARKS_MD


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
