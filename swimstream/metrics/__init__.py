"""Counters and gauges, rendered in the Prometheus text format.

A leaf layer: every other layer may count things here, and ``/metrics`` renders them.
Counters are plain attributes bumped on the hot path (``counter.value += n`` costs what
an attribute store costs); gauges are read when scraped, from a function, so nothing
is computed between scrapes.
"""

from swimstream.metrics.registry import Counter, Gauge, MetricsRegistry

__all__ = ["Counter", "Gauge", "MetricsRegistry"]
