"""Quix Streams on the benchmark's workload (client: confluent-kafka, i.e. librdkafka).

A StreamingDataFrame over the input topic: a stateful ``update`` keeps per-key state
(count and last reading per device) in Quix's in-memory store without changelog topics,
as the benchmark's in-memory swimstream rows keep theirs; readings hotter than
90 become alert records on the alerts topic. Values are decoded by the topic's ``json``
deserializer (orjson). Completion is counted in ``on_message_processed``, which Quix
calls after a record went through the whole pipeline.
"""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import tempfile
from typing import Any

from peer_common import HOT_TEMPERATURE, Tally, parse_args, settings_of


def main() -> None:
    from quixstreams import Application
    from quixstreams.state.memory import MemoryStore

    args = parse_args(__doc__ or "")
    tally = Tally(args.records)

    def processed(topic: str, partition: int, offset: int) -> None:
        tally.add()

    with tempfile.TemporaryDirectory(prefix="quix-state-") as state_dir:
        app = Application(
            broker_address=args.bootstrap,
            consumer_group=args.group,
            auto_offset_reset="earliest",
            consumer_extra_config=settings_of(args),
            producer_extra_config={"linger.ms": 5},
            state_dir=state_dir,
            use_changelog_topics=False,
            on_message_processed=processed,
            loglevel="WARNING",
        )
        readings = app.topic(args.topic, key_deserializer="bytes", value_deserializer="json")
        alerts = app.topic(args.alerts_topic, key_serializer="bytes", value_serializer="json")
        frame = app.dataframe(readings)
        frame.register_store(store_type=MemoryStore)

        def track(reading: dict[str, Any], state: Any) -> None:
            state.set("count", state.get("count", 0) + 1)
            state.set("last", reading)

        def alert(reading: dict[str, Any]) -> dict[str, Any]:
            tally.alerts += 1
            return {"device": reading["device"], "temp": reading["temp"]}

        frame = frame.update(track, stateful=True)
        frame = frame.filter(lambda reading: reading["temp"] > HOT_TEMPERATURE)
        frame = frame.apply(alert)
        frame.to_topic(alerts)
        app.run()


if __name__ == "__main__":
    main()
