"""A simulated fleet of sensors on cell towers, producing readings to a topic.

Each device has a home tower and a temperature that drifts in a random walk; now and
then a device moves to a neighbouring tower, and a few run hot (above 90, raising
alerts) before cooling down. Records are keyed by device id and carry JSON
``{"device", "tower", "temp", "ts"}``: the shape the towers app's source expects.

``python -m examples.towers.simulator --bootstrap HOST:PORT`` feeds a Kafka cluster
(the ``simulator`` service of ``docker-compose.yml``); ``swimstream demo`` runs the same
fleet inside its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from swimstream.cli.arguments import positive_float, positive_int

Produce = Callable[[str, bytes, bytes], None]
"""produce(topic, key, value)."""


class Fleet:
    """The devices and their towers; ``reading()`` advances one device by one step."""

    def __init__(self, devices: int, towers: int | None = None, seed: int = 1) -> None:
        self._rng = random.Random(seed)
        self.towers = towers or max(4, devices // 250)
        self._tower = [self._rng.randrange(self.towers) for _ in range(devices)]
        self._temp = [self._rng.uniform(45.0, 75.0) for _ in range(devices)]
        self._ts = 0

    def reading(self) -> tuple[str, dict[str, Any]]:
        """The next reading: ``(device id, payload)``."""
        rng = self._rng
        device = rng.randrange(len(self._tower))
        if rng.random() < 0.002:  # moves to a neighbouring tower
            self._tower[device] = (self._tower[device] + rng.choice((-1, 1))) % self.towers
        temp = self._temp[device] + rng.gauss(0.0, 1.5)
        if rng.random() < 0.0005:
            temp += 25.0  # a heat spike
        temp = min(110.0, max(20.0, temp * 0.995 + 60.0 * 0.005))  # drifts back toward 60
        self._temp[device] = temp
        self._ts += 1
        payload = {
            "device": str(device),
            "tower": f"t{self._tower[device]}",
            "temp": round(temp, 1),
            "ts": self._ts,
        }
        return str(device), payload


CHUNK = 500
"""Readings produced between two turns of the event loop, whatever the rate."""


async def simulate(
    produce: Produce, topic: str, fleet: Fleet, rate: int, stop: asyncio.Event
) -> int:
    """Produce ``rate`` readings per second until ``stop`` is set; returns how many.

    At most :data:`CHUNK` readings go out between two turns of the event loop: the demo
    runs the app on the same loop, and a rate beyond what the machine can simulate
    (``--rate 3000000``) produced a second's worth in one go, seconds of CPU in which
    the app read nothing, no status line was printed and Ctrl-C waited."""
    sent = 0
    tick = 0.02
    started = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate)
        behind = min(due - sent, rate)  # catch up, but never more than a second's worth
        for _ in range(min(behind, CHUNK)):
            key, payload = fleet.reading()
            produce(topic, key.encode(), orjson.dumps(payload))
            sent += 1
        if behind > CHUNK:
            await asyncio.sleep(0)  # (the rest after everything else had its turn)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
    return sent


TOPIC_WAIT = 120.0
"""Seconds to wait for the topic to exist before giving up."""


def main(argv: Sequence[str] | None = None) -> int:
    """Produce readings to a Kafka cluster until SIGTERM, SIGINT or ``--duration``."""
    return asyncio.run(_feed(arguments().parse_args(argv)))


def arguments() -> argparse.ArgumentParser:
    """The command line (also read by the tests that replay what it produced)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.towers.simulator",
        description="Feed the towers app: readings of a simulated fleet, keyed by device.",
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP", "localhost:9092"),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP or localhost:9092)",
    )
    parser.add_argument("--topic", default="readings", help="topic to feed (default readings)")
    parser.add_argument("--devices", type=positive_int, default=5000, help="devices (default 5000)")
    parser.add_argument(
        "--rate", type=positive_int, default=5000, help="readings a second (default 5000)"
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="stop after this long, counted from the start (default: until SIGTERM)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the fleet")
    return parser


async def _feed(args: argparse.Namespace) -> int:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "towers-simulator",
            "partitioner": "murmur2_random",  # as the Java clients, and the app's default
            "linger.ms": 20,
            "enable.idempotence": True,  # a device's readings stay in order through retries
        }
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started = time.monotonic()
    end = math.inf if args.duration is None else started + args.duration
    if not await _wait_for_topic(producer, args.topic, stop, min(end, started + TOPIC_WAIT)):
        return 0 if stop.is_set() else 1
    _say(f"feeding {args.topic} on {args.bootstrap}: {args.devices:,} devices, {args.rate:,}/s")
    sent = 0

    def produce(topic: str, key: bytes, value: bytes) -> None:
        nonlocal sent
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
        producer.poll(0)  # serve delivery reports as they come
        sent += 1

    async def report() -> None:
        last = time.monotonic()
        counted = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, min(5.0, end - last)))
            now = time.monotonic()
            _say(f"sent {sent:,} readings ({(sent - counted) / max(now - last, 1e-3):,.0f}/s)")
            counted, last = sent, now
            if now >= end:
                stop.set()

    reporter = loop.create_task(report())
    fleet = Fleet(args.devices, seed=args.seed)
    await simulate(produce, args.topic, fleet, args.rate, stop)
    await reporter
    left = producer.flush(10.0)
    _say(f"stopped after {sent:,} readings" + (f", {left:,} undelivered" if left else ""))
    return 0 if left == 0 else 1


async def _wait_for_topic(producer: Any, topic: str, stop: asyncio.Event, deadline: float) -> bool:
    """Whether ``topic`` exists (the service creates it); waits until ``deadline``
    (:data:`TOPIC_WAIT` at most, or the end of ``--duration``).

    The simulator never creates it: a broker that auto-creates topics would make it
    with its own default partition count, not the one the app is configured with.
    """
    said = False
    while not stop.is_set():
        try:
            if topic in producer.list_topics(timeout=5.0).topics:  # all topics: never creates
                return True
        except Exception as exc:  # KafkaException: the broker is not answering yet
            problem = f"broker not answering ({exc})"
        else:
            problem = f"topic {topic} does not exist yet (swimstream creates it at start)"
        if time.monotonic() >= deadline:
            _say(f"giving up: {problem}")
            return False
        if not said:
            _say(f"waiting: {problem}")
            said = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return False


def _say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  simulator: {line}", file=sys.stdout, flush=True)


if __name__ == "__main__":
    sys.exit(main())
