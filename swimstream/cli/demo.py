"""``swimstream demo``: the towers example, live, on an embedded broker.

Starts an embedded Kafka (Tansu), runs ``config/towers.yaml`` as a service with its
dashboard, feeds it from a simulated fleet of devices, and prints one status line a
second (throughput in and out, agents, lag, the latest alert) until Ctrl-C or
``--duration`` seconds. Runs from a checkout: the agents are in ``examples/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from swimstream.config import load_config
from swimstream.runtime import Insight
from swimstream.service import Service


def demo_config_path() -> Path:
    """``config/towers.yaml`` of the checkout the examples are imported from."""
    import examples.towers

    return Path(examples.towers.__file__).resolve().parents[2] / "config" / "towers.yaml"


async def run_demo(duration: float | None, devices: int, rate: int, web: str) -> int:
    """Run the demo; returns the exit status (0 when it stopped as asked)."""
    from connectors.factory import open_connectors
    from connectors.kafka.sink import KafkaSink
    from examples.towers.simulator import Fleet, simulate

    data = tempfile.mkdtemp(prefix="swimstream-demo-")  # the embedded broker is new each run too
    env = {
        "SWIMSTREAM_BROKER": "embedded",
        "SWIMSTREAM_WEB": web,
        "SWIMSTREAM_DATA": data,
    }
    config = load_config(demo_config_path(), env)
    service = Service(config, open_connectors)
    latest: list[Insight] = []
    service.insight_listeners.append(
        lambda insight: latest.append(insight) if insight.topic == "alerts" else None
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    await service.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(service.close)
        assert service.web is not None
        until = "Ctrl-C to stop" if duration is None else f"stops after {duration:g} s"
        print(f"dashboard: {service.web.url}   ({until})", flush=True)
        # The fleet has a producer of its own, as devices would: through the service's,
        # its readings would ride the service's transactions (visible only at each
        # checkpoint, aborted with it) and give an idle service something to commit.
        sink = KafkaSink(service.clients["kafka"].address)
        await sink.open()
        stack.push_async_callback(sink.close)  # (before the service and its broker stop)
        fleet = Fleet(devices)

        def produce(topic: str, key: bytes, value: bytes) -> None:
            sink.produce(topic, key, value)
            sink.poll()  # delivery reports: nobody else serves this producer's

        simulator = loop.create_task(simulate(produce, "readings", fleet, rate, stop))
        with contextlib.suppress(NotImplementedError):
            import signal

            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
        started = time.monotonic()
        try:
            await _report(service, latest, stop, duration, started)
        finally:
            stop.set()
            await simulator
    shutil.rmtree(data, ignore_errors=True)
    print("demo stopped", flush=True)
    return 0


async def _report(
    service: Service,
    latest: list[Insight],
    stop: asyncio.Event,
    duration: float | None,
    started: float,
) -> None:
    registry = service.registry
    last_in = last_out = 0.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        records = registry.value("records_in", topic="readings")
        insights = sum(
            registry.value("insights_out", topic=t) for t in ("device-alerts", "tower-summaries")
        )
        plane = service.plane
        assert plane is not None
        lag = sum(sum(r.lag().values()) for r in service.runners)
        alert = ""
        if latest:
            a = latest[-1].value
            alert = f" | latest alert: device {a['device']} at {a['temp']} on tower {a['tower']}"
        dead = registry.value("dead_letters")
        print(
            f"{time.strftime('%H:%M:%S')}  in {records - last_in:>7,.0f}/s"
            f"  insights {insights - last_out:>6,.0f}/s  agents {plane.active_agents:>6,}"
            f"  lag {lag:>6,}  dead letters {dead:,.0f}{alert}",
            file=sys.stdout,
            flush=True,
        )
        last_in, last_out = records, insights
        del latest[:-1]
        if duration is not None and time.monotonic() - started >= duration:
            stop.set()
