"""Insights out: what agents publish, and lane sinks, become broker records.

``self.publish(name, value)`` goes to the sink that declares ``publish: name``; a lane
sink (``from: /device/:id#alerts``) turns every change of that lane into a record keyed
by the agent's id. Records are JSON (or raw bytes/text with ``format: raw``) and carry
headers naming the node and lane they came from.

Each record's delivery counts as an effect of the broker record being handled when it
was published (its origin), so the source offset is committed only once the insight is
durable. With durable state, each insight also carries ``swimstream.checkpoint``: the checkpoint
whose commit makes it visible (to tell apart, on brokers that show aborted transactions,
the copies a crash left behind). A delivery that finally fails (the client gave up after
its retries) is not acknowledged at all: the offset stays uncommitted, the failure is
counted and health turns red, and a restart replays the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from swimstream.agent import Lane, change_to_json
from swimstream.crdt import Op
from swimstream.errors import ConfigError
from swimstream.metrics import MetricsRegistry
from swimstream.runtime import Insight
from swimstream.runtime.origin import fork_origin
from swimstream.streams.connector import SinkConnector

log = logging.getLogger("swimstream.sinks")


def encode_value(value: Any, record_format: str) -> bytes:
    """A sink record's value: JSON, or the bytes/text itself for ``raw``."""
    if record_format == "raw":
        if isinstance(value, bytes):
            return value
        return str(value).encode()
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


@dataclass(frozen=True, slots=True)
class SinkTarget:
    """Where one sink's records go."""

    topic: str
    format: str
    connector: SinkConnector


class DeliveryFailures:
    """Counts insight deliveries that failed for good; health reads it."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self._counter = registry.counter(
            "insight_delivery_failures", "Insight records the broker never acknowledged."
        )
        self.last_error: BaseException | None = None

    @property
    def count(self) -> int:
        return int(self._counter.value)

    def tracked(
        self, on_delivered: Callable[[BaseException | None], None] | None
    ) -> Callable[[BaseException | None], None]:
        """A delivery callback that completes ``on_delivered`` only on success."""

        def delivered(error: BaseException | None) -> None:
            if error is None:
                if on_delivered is not None:
                    on_delivered(None)
                return
            self._counter.value += 1
            self.last_error = error
            log.error("an insight record was not delivered: %s", error)

        return delivered


class InsightPublisher:
    """The plane's publisher: routes ``publish(name, ...)`` to the declared sink."""

    def __init__(
        self,
        targets: Mapping[str, SinkTarget],
        registry: MetricsRegistry,
        failures: DeliveryFailures,
        listeners: list[Callable[[Insight], None]] | None = None,
        checkpoint: Callable[[], int] | None = None,
    ) -> None:
        self._targets = dict(targets)
        self._failures = failures
        self._listeners = listeners if listeners is not None else []
        self._checkpoint = checkpoint
        self._counters = {
            name: registry.counter("insights_out", "Insight records produced.", topic=t.topic)
            for name, t in self._targets.items()
        }

    def __call__(self, insight: Insight) -> None:
        target = self._targets.get(insight.topic)
        if target is None:
            known = ", ".join(sorted(self._targets)) or "none"
            raise ConfigError(
                f"publish({insight.topic!r}): no sink declares `publish: {insight.topic}` "
                f"(declared: {known}); add it to the sinks of the app config"
            )
        self._counters[insight.topic].value += 1
        headers = [("swimstream.node", insight.node_uri.encode())]
        if self._checkpoint is not None:
            headers.append(("swimstream.checkpoint", str(self._checkpoint()).encode()))
        target.connector.produce(
            target.topic,
            insight.key.encode(),
            encode_value(insight.value, target.format),
            headers,
            self._failures.tracked(fork_origin()),
        )
        for listener in self._listeners:
            listener(insight)


class LaneSink:
    """A lane observer that writes every change of one lane to a topic."""

    def __init__(
        self,
        target: SinkTarget,
        key_param: str,
        registry: MetricsRegistry,
        failures: DeliveryFailures,
    ) -> None:
        self._target = target
        self._key_param = key_param
        self._failures = failures
        self._counter = registry.counter(
            "insights_out", "Insight records produced.", topic=target.topic
        )

    def __call__(self, lane: Lane, op: Op) -> None:
        agent = lane._agent
        node_uri = agent.node_uri
        key = node_uri if self._key_param == "uri" else agent.params.get(self._key_param, node_uri)
        self._counter.value += 1
        self._target.connector.produce(
            self._target.topic,
            key.encode(),
            encode_value(change_to_json(lane, op), self._target.format),
            [("swimstream.node", node_uri.encode()), ("swimstream.lane", lane.name.encode())],
            self._failures.tracked(fork_origin()),
        )
