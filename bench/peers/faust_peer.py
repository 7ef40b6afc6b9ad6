"""faust-streaming on the benchmark's workload (client: aiokafka, pure Python).

One agent over the input topic: per-key state (count and last reading per device, in a
dict, as the benchmark's in-memory swimstream rows keep theirs) and an alert
record sent to the alerts topic for each reading hotter than 90. Values are decoded by
the topic's ``json`` serializer (faust uses orjson when it is installed, as it is here).
faust's banner and logs go to stderr: stdout carries only the report lines.
"""

# mypy: disable-error-code="import-not-found, untyped-decorator"

from __future__ import annotations

import sys
import tempfile
from typing import Any

from peer_common import HOT_TEMPERATURE, Tally, parse_args, settings_of


def main() -> None:
    import faust

    args = parse_args(__doc__ or "")
    settings = settings_of(args)
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        # faust writes `<app>-data/` into the working directory otherwise
        datadir=tempfile.mkdtemp(prefix="bench-faust-"),
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=4,
        **settings,
    )
    readings = app.topic(args.topic, key_serializer="raw", value_serializer="json")
    alerts = app.topic(args.alerts_topic, key_serializer="raw", value_serializer="json")
    tally = Tally(args.records)
    devices: dict[Any, list[Any]] = {}  # key -> [count, last reading]

    @app.agent(readings)
    async def track(stream: Any) -> None:
        async for key, reading in stream.items():
            state = devices.get(key)
            if state is None:
                devices[key] = [1, reading]
            else:
                state[0] += 1
                state[1] = reading
            if reading["temp"] > HOT_TEMPERATURE:
                tally.alerts += 1
                await alerts.send(
                    key=key,
                    value={"device": reading["device"], "temp": reading["temp"]},
                )
            tally.add()

    worker = faust.Worker(
        app, loglevel="WARNING", quiet=True, stdout=sys.stderr, redirect_stdouts=False
    )
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
