"""The metrics registry (see the package docstring)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

Labels = tuple[tuple[str, str], ...]

log = logging.getLogger("swimstream.metrics")


@dataclass(eq=False)
class Counter:
    """A monotonic count; bump ``value`` directly."""

    name: str
    help: str
    labels: Labels = ()
    value: float = 0

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (which must not be negative)."""
        self.value += amount


@dataclass(eq=False)
class Gauge:
    """A value read from ``read()`` at scrape time (per label set).

    ``kind`` is ``counter`` for a count kept elsewhere that only grows (the plane's
    commands): Prometheus' ``rate()`` and ``increase()`` then treat a drop as a restart."""

    name: str
    help: str
    read: Callable[[], float | Mapping[Labels, float]] = field(repr=False)
    kind: str = "gauge"
    failing: bool = False
    """The last read raised (warned of once, until a read works again)."""


class MetricsRegistry:
    """Holds every metric of one process and renders them for Prometheus."""

    def __init__(self, prefix: str = "swimstream_") -> None:
        self.prefix = prefix
        self._counters: dict[tuple[str, Labels], Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self._help: dict[str, str] = {}

    def counter(self, name: str, help: str, **labels: str) -> Counter:
        """The counter ``name`` with ``labels`` (created at 0 on first use)."""
        full = self._check(name, help, "_total")
        key = (full, tuple(sorted(labels.items())))
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = Counter(full, help, key[1])
        return counter

    def gauge(
        self, name: str, help: str, read: Callable[[], float | Mapping[Labels, float]]
    ) -> Gauge:
        """Register (or replace) the gauge ``name``, read at scrape time."""
        full = self._check(name, help, "")
        gauge = self._gauges[full] = Gauge(full, help, read)
        return gauge

    def counted(
        self, name: str, help: str, read: Callable[[], float | Mapping[Labels, float]]
    ) -> Gauge:
        """Register (or replace) the counter ``name``, read at scrape time: a count only
        growing until the process restarts, kept elsewhere (named ``..._total``)."""
        full = self._check(name, help, "_total")
        gauge = self._gauges[full] = Gauge(full, help, read, "counter")
        return gauge

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (0 if it was never created); for tests and logs."""
        counter = self._counters.get((self.prefix + name + "_total", tuple(sorted(labels.items()))))
        return 0 if counter is None else counter.value

    def render(self) -> str:
        """Everything, in the Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        by_name: dict[str, list[Counter]] = {}
        for counter in self._counters.values():
            by_name.setdefault(counter.name, []).append(counter)
        for name, counters in sorted(by_name.items()):
            lines += [f"# HELP {name} {_escape_help(self._help[name])}", f"# TYPE {name} counter"]
            lines += [f"{name}{_labels(c.labels)} {_number(c.value)}" for c in counters]
        for name, gauge in sorted(self._gauges.items()):
            lines += [f"# HELP {name} {_escape_help(gauge.help)}", f"# TYPE {name} {gauge.kind}"]
            try:
                reading = gauge.read()
            except Exception as exc:  # (one family short, not the whole scrape a 500)
                if not gauge.failing:
                    log.warning(
                        "metric %s could not be read, left out of the scrape: %s: %s",
                        name,
                        type(exc).__name__,
                        exc,
                    )
                gauge.failing = True
                continue
            gauge.failing = False
            samples: Iterable[tuple[Labels, float]] = (
                reading.items() if isinstance(reading, Mapping) else [((), reading)]
            )
            lines += [f"{name}{_labels(labels)} {_number(v)}" for labels, v in samples]
        return "\n".join(lines) + "\n"

    def _check(self, name: str, help: str, suffix: str) -> str:
        full = self.prefix + name + (suffix if not name.endswith(suffix) else "")
        if not _NAME.fullmatch(full):
            raise ValueError(f"invalid metric name {full!r}")
        known = self._help.setdefault(full, help)
        if known != help:
            raise ValueError(f"metric {full} registered twice with different help texts")
        return full


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
    return "{" + body + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
