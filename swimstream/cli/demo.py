"""``swimstream demo``: the towers example, live, on an embedded broker.

Starts an embedded Kafka (Tansu), runs ``config/towers.yaml`` as a service with its
dashboard, feeds it from a simulated fleet of devices, and prints one status line a
second (throughput in and out, agents, lag, the latest alert) until Ctrl-C or
``--duration`` seconds. Runs from a checkout: the agents are in ``examples/``, found
next to the ``swimstream`` package whatever the working directory (a user who ran
``make demo`` once and then ``swimstream demo`` from their home directory got a
``ModuleNotFoundError`` traceback).

Without ``--web``, the dashboard takes 127.0.0.1:9001, or any free port when another
process (a second demo) holds that one, as Jupyter moves to the next port: a demo that
ended on the busy port only said ``web.listen``, a key the user never wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from swimstream.cli.logs import log_context
from swimstream.config import load_config
from swimstream.errors import SwimstreamError
from swimstream.runtime import Insight
from swimstream.service import Service, StoppedStarting

DEFAULT_DASHBOARD = "127.0.0.1:9001"
"""Where the dashboard listens unless ``--web`` says otherwise (while it is free)."""

FLEET_CLOSE = 1.0
"""Seconds the simulator's producer may take to deliver what it holds as the demo ends."""


def demo_config_path() -> Path:
    """``config/towers.yaml`` of the checkout the examples are imported from."""
    _find_examples()
    import examples.towers

    return Path(examples.towers.__file__).resolve().parents[2] / "config" / "towers.yaml"


def _find_examples() -> None:
    """Put the checkout that holds this ``swimstream`` package first on ``sys.path``, so
    ``examples.towers`` imports from any working directory; without one (an installed
    wheel), say what the demo needs instead of a traceback."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "examples" / "towers" / "app.py").is_file():
        if str(checkout) not in sys.path:
            sys.path.insert(0, str(checkout))
        return
    try:
        import examples.towers  # noqa: F401  (some other layout that has them)
    except ImportError:
        raise SwimstreamError(
            "the demo runs the towers example of a swimstream checkout (examples/ and "
            f"config/towers.yaml), and this installation ({checkout}) has none: clone "
            "the repository and run `make demo` there"
        ) from None


def listen_problem(address: str) -> str | None:
    """Why a server could not listen on ``host:port`` now, or None when it could (bound
    as aiohttp binds, with ``SO_REUSEADDR``: a port a demo that just ended left in
    TIME_WAIT is free)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            return (exc.strerror or str(exc)).lower()
    return None


def dashboard_address(requested: str | None, default: str = DEFAULT_DASHBOARD) -> str:
    """The address the dashboard is to listen on.

    Raises:
        SwimstreamError: ``requested`` (``--web``) cannot be listened on, naming the
            option and what to pass instead.
    """
    if requested is None:
        if listen_problem(default) is None:
            return default
        host = default.rpartition(":")[0]
        print(f"{default} is in use (another demo?): the dashboard takes a free port", flush=True)
        return f"{host}:0"
    problem = listen_problem(requested)
    if problem is not None:
        host = requested.rpartition(":")[0] if "in use" in problem else "127.0.0.1"
        raise SwimstreamError(
            f"--web {requested}: cannot listen there ({problem}): pass another address, "
            f"such as --web {host}:0 for any free port (make demo DEMO_ARGS='--web {host}:0')"
        )
    return requested


async def run_demo(duration: float | None, devices: int, rate: int, web: str | None) -> int:
    """Run the demo; returns the exit status (0 when it stopped as asked)."""
    config_path = demo_config_path()
    web = dashboard_address(web)
    from connectors.factory import open_connectors
    from connectors.kafka.sink import KafkaSink
    from examples.towers.simulator import Fleet, simulate

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    latest: list[Insight] = []
    services: list[Service] = []  # (the one, once made)

    def interrupted() -> None:
        stop.set()
        for service in services:
            service.stop()  # (while starting: the start ends at its next step)

    # From the first moment: asyncio.run's own Ctrl-C cancels the demo's task, and a
    # cancel the start swallowed (3.11's wait_for can, when what it waits for ends at the
    # same moment) lost a Ctrl-C in 1 of 12 starts: the demo ran on.
    with contextlib.suppress(NotImplementedError):
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupted)
    async with contextlib.AsyncExitStack() as stack:
        data = tempfile.mkdtemp(prefix="swimstream-demo-")  # the embedded broker is new too
        # Removed however the demo ends: a Ctrl-C while it started left one behind a run.
        stack.callback(shutil.rmtree, data, ignore_errors=True)
        env = {
            "SWIMSTREAM_BROKER": "embedded",
            "SWIMSTREAM_WEB": web,
            "SWIMSTREAM_DATA": data,
        }
        service = Service(load_config(config_path, env), open_connectors)
        log_context(app=service.config.app, instance=service.instance_id)
        service.insight_listeners.append(
            lambda insight: latest.append(insight) if insight.topic == "alerts" else None
        )
        services.append(service)
        if stop.is_set():
            service.stop()
        stack.push_async_callback(service.close)  # (also what a stopped start opened)
        try:
            await service.start()
        except StoppedStarting:
            await stack.aclose()  # (the service's close, then its data)
            print("demo stopped", flush=True)
            return 0
        assert service.web is not None
        until = "Ctrl-C to stop" if duration is None else f"stops after {duration:g} s"
        print(f"dashboard: {service.web.url}   ({until})", flush=True)
        # The fleet has a producer of its own, as devices would: through the service's,
        # its readings would ride the service's transactions (visible only at each
        # checkpoint, aborted with it) and give an idle service something to commit.
        sink = KafkaSink(service.clients["kafka"].address)
        await sink.open()
        # (Before the service and its broker stop.) Simulated readings are not worth
        # the wait: on a broker gone, the 10 s a producer's close takes by default held
        # Ctrl-C, or the end after the broker died, that long before the drain began.
        stack.push_async_callback(sink.close, FLEET_CLOSE)
        fleet = Fleet(devices)

        def produce(topic: str, key: bytes, value: bytes) -> None:
            sink.produce(topic, key, value)
            sink.poll()  # delivery reports: nobody else serves this producer's

        simulator = loop.create_task(simulate(produce, "readings", fleet, rate, stop))
        started = time.monotonic()
        try:
            await _report(service, latest, stop, duration, started, simulator)
        finally:
            stop.set()
            await simulator
    print("demo stopped", flush=True)
    if service.failure is not None:  # (the reason is the last line, as for run)
        print(f"swimstream: stopped after a failure: {service.failure}", file=sys.stderr)
        return 1
    return 0


async def _report(
    service: Service,
    latest: list[Insight],
    stop: asyncio.Event,
    duration: float | None,
    started: float,
    simulator: asyncio.Task[int],
) -> None:
    registry = service.registry
    last_in = last_out = 0.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if duration is not None and time.monotonic() - started >= duration:
            stop.set()
        if service.failure is not None:  # (it stopped itself: the demo ends with it)
            return
        if simulator.done():  # (it failed: its error ends the demo, rather than lines
            return  # of nothing read, for ever, that said nothing of why)
        if not any(runner.connector.assignment() for runner in service.runners):
            # Rather than lines of zeros: the embedded broker holds a group's first join
            # for about 3 s, and nothing is read before it assigns the partitions.
            print(
                f"{time.strftime('%H:%M:%S')}  waiting for the broker to assign the readings "
                f"partitions to the app's consumer group ({time.monotonic() - started:.0f} s "
                "so far; about 3 s with the embedded broker)",
                flush=True,
            )
            continue
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
