"""Probes follow the health provider; /metrics is Prometheus text with the plane's gauges."""

from __future__ import annotations

import logging
import re
from typing import Any

from swimstream.metrics import MetricsRegistry
from swimstream.runtime import MemoryAgentStore
from swimstream.web import HealthReport
from tests.web.harness import Served, ServeFactory, reading

# One line of the Prometheus text exposition format, version 0.0.4.
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABELS = rf'\{{(?:{_NAME}="(?:[^"\\\n]|\\.)*"(?:,{_NAME}="(?:[^"\\\n]|\\.)*")*)?\}}'
_SAMPLE = re.compile(rf"({_NAME})({_LABELS})? (-?[0-9.e+]+|NaN|[+-]Inf)")
_HELP = re.compile(rf"# HELP ({_NAME}) .*")
_TYPE = re.compile(rf"# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)")


def parse_prometheus(text: str) -> dict[str, float]:
    """Samples by ``name{labels}``; fails on any line that is not valid exposition text."""
    samples: dict[str, float] = {}
    typed: dict[str, str] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if (match := _TYPE.fullmatch(line)) is not None:
            assert match[1] not in typed, f"{match[1]} typed twice"
            typed[match[1]] = match[2]
        elif _HELP.fullmatch(line) is not None:
            continue
        elif (match := _SAMPLE.fullmatch(line)) is not None:
            family = match[1].removesuffix("_total") if match[1] not in typed else match[1]
            assert match[1] in typed or family in typed, f"sample before its TYPE: {line}"
            samples[match[1] + (match[2] or "")] = float(match[3])
        else:
            raise AssertionError(f"not Prometheus text: {line!r}")
    return samples


async def test_healthz_and_readyz_follow_the_provider(served: Served) -> None:
    assert await served.get_json("/healthz") == (200, {"ok": True, "checks": {"plane": "running"}})
    assert await served.get_json("/readyz") == (
        200,
        {"ok": True, "checks": {"sources": "caught up"}},
    )

    served.health.ready = HealthReport(False, {"sources": "restoring shard 3"})
    assert await served.get_json("/readyz") == (
        503,
        {"ok": False, "checks": {"sources": "restoring shard 3"}},
    )
    assert (await served.get_json("/healthz"))[0] == 200  # alive while not ready

    served.health.healthy = HealthReport(False, {"shard 3": "no progress for 60 s"})
    assert await served.get_json("/healthz") == (
        503,
        {"ok": False, "checks": {"shard 3": "no progress for 60 s"}},
    )


async def test_a_provider_that_raises_reads_as_unhealthy(served: Served) -> None:
    served.health.broken = True
    status, body = await served.get_json("/healthz")
    assert status == 503 and body["ok"] is False
    assert "the provider itself failed" in body["checks"]["provider"]


async def test_metrics_is_prometheus_text_with_the_plane_gauges(served: Served) -> None:
    for ts in (1, 2, 3):
        await served.post_json(f"/device/{ts}?lane=reading", reading(99.0, "a", ts))
    await served.post_json("/device/1?lane=reading", {"no": "temp"})
    await served.plane.settle()

    async with served.client.get(served.url("/metrics")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
        samples = parse_prometheus(text)

    statistics = served.plane.statistics()
    assert samples["swimstream_plane_active_agents"] == statistics.active_agents == 5
    assert samples["swimstream_plane_stored_agents"] == statistics.stored_agents
    assert samples["swimstream_plane_links"] == statistics.links == 4  # 3 devices, 1 tower
    assert samples["swimstream_plane_timers"] == statistics.timers
    assert samples["swimstream_plane_messages_handled_total"] == statistics.messages_handled > 0
    assert samples["swimstream_plane_callback_failures_total"] == 1
    # Counts that only grow are counters (rate() reads a drop as a restart), levels gauges.
    assert "# TYPE swimstream_plane_commands_total counter" in text
    # Help says what counts today: WARP is not served yet.
    helps = [line for line in text.splitlines() if line.startswith("# HELP")]
    assert [line for line in helps if "WARP" in line] == []
    assert "# TYPE swimstream_plane_active_agents gauge" in text
    assert samples["swimstream_web_streams_open"] == 0
    assert samples['swimstream_web_responses_total{code="200",method="POST"}'] == 3
    assert samples['swimstream_web_responses_total{code="422",method="POST"}'] == 1


async def test_metrics_count_stored_agents_and_pending_timers(serve: ServeFactory) -> None:
    """The two gauges that read zero on a fresh plane, given something to count."""
    async with serve(store=MemoryAgentStore(), idle_timeout=60.0) as served:
        for ts in (1, 2, 3):
            await served.post_json(f"/device/{ts}?lane=reading", reading(50.0, "a", ts))

        def two_timers(device: Any) -> None:  # due long after the passivation below
            device.schedule(3600.0, device.on_reading, reading(40.0))
            device.schedule(7200.0, device.on_reading, reading(41.0))

        await served.plane.call("/device/1", two_timers)
        await served.plane.advance(61.0)  # every agent idle past its timeout: passivated
        async with served.client.get(served.url("/metrics")) as response:
            samples = parse_prometheus(await response.text())

    assert samples["swimstream_plane_active_agents"] == 0
    assert samples["swimstream_plane_stored_agents"] == 5  # 3 devices, the tower, the world
    assert samples["swimstream_plane_timers"] == 2


def test_a_gauge_that_fails_to_read_leaves_the_others_scraped(caplog: Any) -> None:
    """A gauge read raising (a consumer's lag while it closes, say) made every scrape a
    500: Prometheus then saw the instance down. Its family stays, without a sample."""
    registry = MetricsRegistry()
    registry.counter("records_in", "Records in.").inc(7)

    def lag() -> float:
        raise RuntimeError("the consumer is closing")

    registry.gauge("consumer_lag", "Records behind.", lag)
    registry.gauge("mailbox_depth", "Messages queued.", lambda: 3)
    with caplog.at_level(logging.WARNING, logger="swimstream.metrics"):
        text = registry.render()
        registry.render()
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == ["swimstream_records_in_total 7", "swimstream_mailbox_depth 3"]
    assert "# TYPE swimstream_consumer_lag gauge" in text
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        "metric swimstream_consumer_lag could not be read, left out of the scrape: "
        "RuntimeError: the consumer is closing"
    ]
