"""The raw limit: a bare confluent-kafka loop that parses each value and updates a dict.

No framework, no alerts, no commits beyond librdkafka's automatic ones: the most a
single Python process does with this client on this broker, the ceiling the others are
read against. ``--json`` picks the parser (orjson or the standard library).
"""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError
from peer_common import Tally, parse_args, settings_of


def main() -> None:
    args = parse_args(__doc__ or "")
    loads: Callable[[bytes], Any] = orjson.loads if args.json == "orjson" else json.loads
    consumer = Consumer(
        {
            **settings_of(args),
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([args.topic])
    tally = Tally(args.records)
    devices: dict[bytes | None, list[Any]] = {}  # key -> [count, last reading]
    try:
        while not tally.finished:
            batch = consumer.consume(1000, timeout=0.5)
            processed = 0
            for message in batch:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise SystemExit(f"consume failed: {error}")
                reading = loads(message.value() or b"null")
                state = devices.get(message.key())
                if state is None:
                    devices[message.key()] = [1, reading]
                else:
                    state[0] += 1
                    state[1] = reading
                processed += 1
            tally.add(processed)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
