"""Bytewax on the benchmark's workload (client: confluent-kafka, i.e. librdkafka).

A dataflow of one worker: KafkaSource (one consumer per partition, assigned by Bytewax
itself: it keeps offsets in its own recovery store, not in a consumer group, so the
``--group`` argument has nothing to name), values parsed with orjson, per-key state
(count and last reading per device) in ``stateful_map`` (in memory; no recovery store is
configured, as the benchmark's in-memory swimstream rows keep theirs), and alert
records for readings hotter than 90 written by KafkaSink. ``tail=False`` ends the
dataflow at the end of the topic.
"""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

from typing import Any

import orjson
from peer_common import HOT_TEMPERATURE, Tally, parse_args, settings_of


def main() -> None:
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.run import cli_main

    args = parse_args(__doc__ or "")
    settings = {name: str(value) for name, value in settings_of(args).items()}
    tally = Tally(args.records)

    def parse(message: Any) -> tuple[str, dict[str, Any]]:
        return message.key.decode(), orjson.loads(message.value)

    def track(state: list[Any] | None, reading: dict[str, Any]) -> tuple[list[Any], Any]:
        if state is None:
            state = [0, None]
        state[0] += 1
        state[1] = reading
        return state, reading

    def to_alert(keyed: tuple[str, dict[str, Any]]) -> Any:
        key, reading = keyed
        alert = None
        if reading["temp"] > HOT_TEMPERATURE:
            tally.alerts += 1
            value = {"device": reading["device"], "temp": reading["temp"]}
            alert = KafkaSinkMessage(key.encode(), orjson.dumps(value))
        tally.add()
        return alert

    flow = Dataflow("swimstream-e2e")
    messages = op.input(
        "readings",
        flow,
        KafkaSource([args.bootstrap], [args.topic], tail=False, add_config=settings),
    )
    readings = op.map("parse", messages, parse)
    tracked = op.stateful_map("track", readings, track)
    alerts = op.filter_map("alert", tracked, to_alert)
    op.output("alerts", alerts, KafkaSink([args.bootstrap], args.alerts_topic, {"linger.ms": "5"}))
    cli_main(flow, workers_per_process=1)


if __name__ == "__main__":
    main()
