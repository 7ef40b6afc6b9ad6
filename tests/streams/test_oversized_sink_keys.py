"""An insight whose key takes its record over the sink's limit is refused by the sink's
own size check, as one whose value is too large: it fails the callback that published
it, naming the sizes, and the instance goes on.

The check counted the value only: ``publish(name, value, key=<half a megabyte>)`` passed
it and went to the client, which refused it at ``produce``. Here, at least once, that
failed the callback too (with the client's "Message size too large"); but with durable
state exactly once, an insight published while a checkpoint commits is held and
produced when the next transaction starts, where that refusal fails the checkpoint and
stops the instance (the case the value's check was made for).
"""

from __future__ import annotations

from pathlib import Path

from connectors.embedded import EmbeddedKafka
from swimstream import Agent, CommandLane
from swimstream.service import Service
from tests.streams.one_agent_service import one_agent_service
from tests.support.kafka import produce_json, read_topic
from tests.support.waiting import wait_until

KEY_SIZE = 500_000
"""With a value of :data:`VALUE_SIZE`, a record of just under the client's 1,000,000
bytes before its headers: well under the limit counting the value only."""
VALUE_SIZE = 499_950


class Teller(Agent):
    """Publishes ``size`` characters under a key of :data:`KEY_SIZE` characters, or
    under its id for a small size."""

    size = CommandLane[int]()

    @size.on_command
    def on_size(self, size: int) -> None:
        key = "k" * KEY_SIZE if size == VALUE_SIZE else self.params["id"]
        self.publish("told", "x" * size, key=key)


def callback_failures(service: Service) -> int:
    plane = service.plane
    return 0 if plane is None else plane.failures.count


async def test_an_insight_with_a_key_too_large_fails_its_callback(tmp_path: Path) -> None:
    with EmbeddedKafka() as broker:
        async with one_agent_service(
            broker,
            "telling",
            f"{__name__}:Teller",
            "/teller/:id",
            {"topic": "sizes", "route": "/teller/{key}", "lane": "size"},
            {"publish": "told", "topic": "told", "format": "raw"},
        ) as service:
            produce_json(broker.bootstrap, "sizes", [("a", 3), ("b", VALUE_SIZE), ("c", 2)])
            registry = service.registry
            await wait_until(
                lambda: (
                    (
                        registry.value("insights_out", topic="told") >= 2
                        and callback_failures(service) + service.failures.count >= 1
                    )
                    or service.failure is not None
                ),
                30,
                "a and c told, b refused",
            )
            assert service.failure is None and service.failures.count == 0
            assert callback_failures(service) == 1
            error = service.plane.failures.last_error if service.plane else None
            assert "(a key of 500000 bytes and its value) is over the" in str(error), error
        assert service.failure is None
        told = read_topic(broker.bootstrap, "told")
        assert sorted((r.key(), r.value()) for r in told) == [(b"a", b"xxx"), (b"c", b"xx")]
